#!/usr/bin/env bash
# Runs the same benches built from two revisions, alternating, in one script: the figures of a
# change next to its baseline on the same machine in the same minutes (BENCHMARKS.md).
#   scripts/bench-revisions.sh BEFORE AFTER [ROUNDS] -- BENCH...
# e.g. scripts/bench-revisions.sh a248af3 HEAD 2 -- routing sla_timers
# Each revision is checked out in a temporary worktree and built with `cargo bench --no-run`
# (shared CARGO_TARGET_DIR, so dependencies build once); then, ROUNDS times, every bench runs
# from BEFORE then from AFTER. Bench environment variables (SLA_BENCH_N, ...) pass through.
set -euo pipefail
before=$1 after=$2 rounds=${3:-2}
shift 2
[ "${1:-}" != "--" ] && shift
[ "${1:-}" = "--" ] && shift
benches=("$@")
[ ${#benches[@]} -gt 0 ] || { echo "usage: $0 BEFORE AFTER [ROUNDS] -- BENCH..." >&2; exit 2; }
root=$(git rev-parse --show-toplevel)
# Resolved once: a revision name such as HEAD must mean the same commit all along.
before=$(git -C "$root" rev-parse --short "$before^{commit}")
after=$(git -C "$root" rev-parse --short "$after^{commit}")
work=$(mktemp -d)
trap 'for r in before after; do git -C "$root" worktree remove --force "$work/$r" 2>/dev/null || true; done; rm -rf "$work"' EXIT
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
declare -A bin
for r in before after; do
  rev=${!r}
  git -C "$root" worktree add --detach "$work/$r" "$rev" >/dev/null
  args=()
  for b in "${benches[@]}"; do args+=(--bench "$b"); done
  # The executables cargo lists, one per bench, in the order asked.
  # Copied out at once: cargo names a workspace member's bench by a hash that does not depend
  # on the checkout's path, so both revisions build the same file name in the shared target
  # directory and the second build overwrote the first (both rounds ran the AFTER binary).
  mkdir -p "$work/bin/$r"
  while read -r name path; do
    cp "$path" "$work/bin/$r/$name"
    bin[$r.$name]=$work/bin/$r/$name
  done < <(cd "$work/$r" && cargo bench --no-run --locked "${args[@]}" 2>&1 \
    | sed -n 's|.*Executable benches/\([a-z_]*\)\.rs (\(.*\))|\1 \2|p')
  echo "== built $r ($rev)"
done
for b in "${benches[@]}"; do
  if cmp -s "${bin[before.$b]}" "${bin[after.$b]}"; then
    echo "== warning: $b is the same executable in both revisions (nothing it links changed)"
  fi
done
for i in $(seq 1 "$rounds"); do
  for b in "${benches[@]}"; do
    for r in before after; do
      echo "== round $i: $b from $r (${!r}), $(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg)"
      (cd "$work/$r" && "${bin[$r.$b]}" --bench)
    done
  done
done
