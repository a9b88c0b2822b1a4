#!/usr/bin/env bash
# Fuzzes petitiond's parsers with cargo-fuzz (libFuzzer, nightly Rust): see ARCHITECTURE.md,
# "Fuzzing".
#
#   scripts/fuzz.sh TARGET SECS     # one target for SECS seconds (e.g. the long run: 600)
#   scripts/fuzz.sh all SECS        # every target, SECS each (scripts/test.sh: 15)
#   scripts/fuzz.sh list            # the targets
#   scripts/fuzz.sh seed            # only (re)build the seed corpora in fuzz/corpus/
#   scripts/fuzz.sh build           # only build every target
#
# Seeds come from the repo's own fixtures (copied, not committed twice: fuzz/corpus/ is
# ignored by git); what runs find is kept in $PETITIOND_CACHE/fuzz-corpus/. A crash stops the run with the input in fuzz/artifacts/TARGET/; fix it in
# src/, commit the input under fuzz/regressions/TARGET/ (plain `cargo test` replays it) and add
# a unit test named after it.
#
# Installs cargo-fuzz (crates.io, --locked) into $PETITIOND_CACHE and uses rustup's nightly
# toolchain (installed if missing). The fuzz build goes to $PETITIOND_FUZZ_TARGET_DIR
# (default $PETITIOND_CACHE/fuzz-target): a cold build takes minutes, a warm one seconds.
# $PETITIOND_FUZZ_SANITIZER: none (default; petitiond forbids unsafe code) or address.
# Builds with fuzz/Cargo.toml's release profile (opt-level 1, 16 codegen units: see there).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${PETITIOND_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/petitiond}"
CARGO_FUZZ_VERSION=0.13.2
CARGO_FUZZ_ROOT="$CACHE/cargo-fuzz-$CARGO_FUZZ_VERSION"
TARGET_DIR="${PETITIOND_FUZZ_TARGET_DIR:-$CACHE/fuzz-target}"
SANITIZER="${PETITIOND_FUZZ_SANITIZER:-none}"
TARGETS=(http_hotline http_portal mail_letter routing_rules routing_dictionary config status_event)

usage() { sed -n '2,10p' "$0" >&2; exit 2; }

# seed TARGET: copies (wrapping where the parser reads a whole page) the fixtures into
# fuzz/corpus/TARGET/. Named after their source, so re-seeding overwrites, never duplicates.
seed() {
  local t="$1" dir="fuzz/corpus/$1" f
  mkdir -p "$dir"
  case "$t" in
    http_hotline) # an Open311 requests.json body is an array of records
      for f in tests/fixtures/http/hotline-*.json; do
        { printf '['; cat "$f"; printf ']'; } >"$dir/fixture-$(basename "$f")"
      done ;;
    http_portal) # the shipped portal mapping reads records at /data/items
      for f in tests/fixtures/http/portal-*.json; do
        { printf '{"data":{"items":['; cat "$f"; printf ']}}'; } >"$dir/fixture-$(basename "$f")"
      done ;;
    mail_letter)
      for f in tests/fixtures/eml/*.eml; do cp "$f" "$dir/fixture-$(basename "$f")"; done ;;
    routing_rules)
      cp config/rules.toml "$dir/fixture-rules.toml" ;;
    routing_dictionary)
      for f in config/dictionaries/*.toml; do cp "$f" "$dir/fixture-$(basename "$f")"; done ;;
    config)
      for f in config/petitiond.toml deploy/debian/petitiond.toml deploy/container/petitiond.toml \
        demo/petitiond-demo.toml; do
        cp "$f" "$dir/fixture-$(echo "$f" | tr / -)"
      done ;;
    status_event) # one event of each name the schema lists, one with actor and payload
      python3 - "$dir" <<'EOF'
import json, sys
schema = json.load(open("schema/status-event.v1.json"))
for name in schema["properties"]["event"]["enum"]:
    ev = {"event_id": "e-" + name, "item_id": "i1", "event": name, "time": "2026-03-02T09:00:00+08:00"}
    if name == "extended":
        ev["actor"] = {"department": "hrss", "person": "A123"}
        ev["payload"] = {"extend_days": 30}
    with open(f"{sys.argv[1]}/schema-{name}.json", "w") as out:
        json.dump(ev, out, ensure_ascii=False)
EOF
      ;;
    *) echo "unknown fuzz target: $t (scripts/fuzz.sh list)" >&2; exit 2 ;;
  esac
  # Inputs that once crashed a target stay in its corpus.
  if [ -d "fuzz/regressions/$t" ]; then cp fuzz/regressions/"$t"/* "$dir"/ 2>/dev/null || true; fi
}

ensure_tools() {
  if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "== installing the nightly toolchain (cargo-fuzz needs it)"
    rustup toolchain install nightly --profile minimal
  fi
  if [ ! -x "$CARGO_FUZZ_ROOT/bin/cargo-fuzz" ]; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION (first run only)"
    mkdir -p "$CACHE"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked \
      --root "$CARGO_FUZZ_ROOT" --target-dir "$CACHE/cargo-fuzz-build"
    rm -rf "$CACHE/cargo-fuzz-build"
  fi
}

# cargo_fuzz SUBCOMMAND ARGS...: `cargo fuzz` finds its subcommand on PATH; +nightly picks
# the toolchain.
cargo_fuzz() {
  local sub="$1"
  shift
  PATH="$CARGO_FUZZ_ROOT/bin:$PATH" cargo +nightly fuzz "$sub" --fuzz-dir fuzz --release --codegen-units 16 \
    --sanitizer "$SANITIZER" --target-dir "$TARGET_DIR" "$@"
}

run() {
  local t="$1" secs="$2"
  seed "$t"
  echo "== fuzzing $t for ${secs}s"
  # -rss_limit_mb: a parser that balloons on one input is a finding too. Seeds first, then
  # mutations; libFuzzer prints its totals (stat::) at the end. What a run adds to the corpus
# goes to $CACHE/fuzz-corpus/TARGET (the first directory), so cached runs build on each other.
  mkdir -p "$CACHE/fuzz-corpus/$t"
  cargo_fuzz run "$t" "$CACHE/fuzz-corpus/$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1
}

case "${1:-}" in
  list) printf '%s\n' "${TARGETS[@]}" ;;
  seed) for t in "${TARGETS[@]}"; do seed "$t"; done ;;
  build) ensure_tools; cargo_fuzz build ;;
  all)
    [ $# -eq 2 ] || usage
    ensure_tools
    # One build of every target, then the runs (a run rebuilds nothing).
    cargo_fuzz build
    # A crash in one target does not skip the others; the run fails at the end.
    failed=()
    for t in "${TARGETS[@]}"; do run "$t" "$2" || failed+=("$t"); done
    if [ ${#failed[@]} -gt 0 ]; then
      echo "fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
      exit 1
    fi ;;
  "") usage ;;
  *)
    [ $# -eq 2 ] || usage
    ensure_tools
    run "$1" "$2" ;;
esac
