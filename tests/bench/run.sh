#!/usr/bin/env bash
# `make bench`: sesame's benchmark, end to end, on this machine.
#
# Installs what is missing (wrk, the Postgres client; the Postgres server too if none is
# reachable and none can be started), builds the release binary, then runs measure.sh
# under tests/with-postgres.sh (the local server at 127.0.0.1:5432, or
# SESAME_TEST_DATABASE_URL, or a throwaway cluster). measure.sh runs every scenario once
# on Postgres and once on SQLite, prints one markdown table and writes it to
# tests/bench/results/latest.md. Progress goes to stderr.
#
# Environment:
#   BENCH_SECONDS    seconds per wrk scenario (default 5: the whole run, build included,
#                    in about 11 minutes on a fresh 2-core machine)
#   BENCH_BACKENDS   "postgres sqlite" (default), or either one
#   BENCH_LARGE      sessions stored for scenario 7's large case (default 1000000)
#   BENCH_NO_BUILD=1 use the release binary as it is
set -euo pipefail
BENCH_T0="$(date +%s)"
export BENCH_T0
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

secs="${BENCH_SECONDS:-5}"
[[ "$secs" =~ ^[0-9]+$ && "$secs" -ge 1 && "$secs" -le 120 ]] || die "BENCH_SECONDS must be 1..120"

# ---- tools ----
reachable() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v psql >/dev/null || need+=(postgresql-client)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
if [[ " ${BENCH_BACKENDS:-postgres} " == *" postgres "* && -z "${SESAME_TEST_DATABASE_URL:-}" ]] \
  && ! reachable 127.0.0.1 5432 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
apt_install "${need[@]}"
command -v cargo >/dev/null || die "cargo is required (https://rustup.rs)"

# ---- build ----
if [[ "${BENCH_NO_BUILD:-}" != 1 ]]; then
  log "building: cargo build --release -p sesame-server"
  (cd "$ROOT" && cargo build --release -p sesame-server) >&2
fi
BENCH_BIN="$(sesame_bin)"
[[ -x "$BENCH_BIN" ]] || die "no release binary at $BENCH_BIN"
export BENCH_BIN BENCH_SECONDS="$secs"
log "built $BENCH_BIN"

mkdir -p "$RAW"
exec "$ROOT/tests/with-postgres.sh" "$BENCH_DIR/measure.sh"
