#!/usr/bin/env bash
# Scaling curves (issue 16 point 3): the end-to-end HTTP drain (benches/http_channels.rs, both
# channels, against a raw rdkafka producer in the same run) at several backlog sizes, and the
# SLA timer engine (benches/sla_timers.rs) at several numbers of open clocks. Every run's
# `SCALING` line goes to $OUT/scaling.jsonl; scripts/plot-scaling.py draws docs/scaling.svg.
#
#   scripts/scaling.sh                                        # mock cluster; 10^3..10^5 items, 10^3..10^6 clocks
#   PETITIOND_BENCH_KAFKA=127.0.0.1:9092 scripts/scaling.sh   # a real broker (e.g. tansu)
#   SCALING_ITEMS="1000 10000 100000 1000000" scripts/scaling.sh   # adds the 10^6 drain
#   SCALING_CLOCKS="" ...                                     # (empty) skips the timer runs
#
# Each size runs in its own process (peak RSS is the run's own). Sizes are total items: the
# bench takes half from each channel. SCALING_APPEND=1 adds to an existing scaling.jsonl (to
# plot two brokers together).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${SCALING_OUT:-target/scaling}
ITEMS=${SCALING_ITEMS-"1000 10000 100000"}
CLOCKS=${SCALING_CLOCKS-"1000 10000 100000 1000000"}
mkdir -p "$OUT"
if [ "${SCALING_APPEND:-0}" != 1 ]; then
  : >"$OUT/scaling.jsonl"
fi
cargo bench --no-run --bench http_channels --bench sla_timers
run() { # run BENCH VAR=VALUE...
  local bench=$1
  shift
  env "$@" cargo bench --bench "$bench" 2>>"$OUT/log" | tee -a "$OUT/log" |
    sed -n 's/^SCALING //p' >>"$OUT/scaling.jsonl"
}
for n in $ITEMS; do
  echo "== http_channels, $n items" >&2
  run http_channels HTTP_BENCH_SCALING=1 HTTP_BENCH_RECORDS=$((n / 2))
done
for n in $CLOCKS; do
  echo "== sla_timers, $n open clocks" >&2
  run sla_timers SLA_BENCH_N="$n"
done
python3 scripts/plot-scaling.py "$OUT/scaling.jsonl" "${SCALING_SVG:-docs/scaling.svg}"
cat "$OUT/scaling.jsonl"
