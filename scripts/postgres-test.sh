#!/usr/bin/env bash
# A throwaway PostgreSQL server for the store tests on the shared backend: its own cluster
# under DIR (initdb as the `postgres` user when run as root), listening on a free loopback
# port, trust authentication on loopback only, fsync off (a test cluster is thrown away).
#
#   scripts/postgres-test.sh start DIR   # installs Debian's postgresql if missing; prints
#                                         # `export PETITIOND_TEST_POSTGRES=...` (also in DIR/env)
#   scripts/postgres-test.sh stop DIR
#
# Each store test creates its own schema in the `petitiond_test` database and drops it.
set -euo pipefail

cmd="${1:-}"
DIR="${2:-}"
if [ -z "$cmd" ] || [ -z "$DIR" ]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi

bindir() { find /usr/lib/postgresql -maxdepth 3 -path '*/bin/initdb' 2>/dev/null | sort -V | tail -1 | xargs -r dirname; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "$cmd" = stop ]; then
  BIN="$(bindir)"
  if [ -n "$BIN" ] && [ -f "$DIR/data/postmaster.pid" ]; then
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  exit 0
fi
[ "$cmd" = start ] || { echo "unknown command $cmd" >&2; exit 2; }

if [ -z "$(bindir)" ]; then
  echo "installing Debian's postgresql (test database server)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
BIN="$(bindir)"
[ -n "$BIN" ] || { echo "no initdb under /usr/lib/postgresql" >&2; exit 1; }

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
if [ "$(id -u)" -eq 0 ]; then
  # The server runs as `postgres` (it refuses root): DIR's parents must let it through.
  chown postgres "$DIR"
fi
chmod 700 "$DIR"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"

as_owner "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 \
  || { cat "$DIR/initdb.log" >&2; exit 1; }
if ! as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w -t 60 start \
  -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  >/dev/null; then
  echo "postgresql did not start:" >&2
  cat "$DIR/log" >&2 || true
  exit 1
fi
as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres petitiond_test

URL="postgres://postgres@127.0.0.1:$PORT/petitiond_test"
echo "export PETITIOND_TEST_POSTGRES=$URL" | tee "$DIR/env"
