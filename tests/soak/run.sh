#!/usr/bin/env bash
# `make soak`: sesame under a mixed load for a long while, watching for 5xx answers, lost
# sessions, panics and memory growth.
#
# Installs what is missing (wrk, curl, python3, the Postgres client; apt-get, as root),
# builds the release binary, then runs soak.sh (under tests/with-postgres.sh for
# Postgres): one fresh database, one `sesame serve`, wrk with soak.lua for SOAK_SECONDS
# (password logins, session /me, API-key exchanges, bearer /me, logouts, and bad inputs
# each with the 4xx it must get). It prints one markdown table and writes it to
# tests/soak/results/latest.md and tests/soak/results/<backend>.md; wrk's output, the
# server log, the RSS samples and /metrics before and after stay in
# tests/soak/results/raw/<backend>/ (not committed).
#
# It fails (exit 1) when any of these happened:
#   - a 5xx answer, counted by soak.lua or by sesame's own /metrics;
#   - a lost session: GET /me answered 401 for a session cookie never logged out;
#   - any other answer the mix did not expect (per kind, see soak.lua), or a socket error;
#   - sessions stored at the end other than soak.lua's live ones, the preflight's, and
#     those whose login or logout was in flight when the load stopped;
#   - a line with level ERROR or a panic in the server log, or the server died, or it did
#     not exit with status 0 on SIGTERM;
#   - RSS grew from start to end by more than SOAK_RSS_GROWTH_PCT percent of the start
#     plus SOAK_RSS_SLACK_MIB MiB (default 20% + 8 MiB); start is the first sample after
#     the warm-up, end the sample taken as the load stops.
#
# Environment:
#   SOAK_SECONDS         how long the load runs (default 600)
#   SOAK_BACKEND         sqlite (default; a temporary file) or postgres (a fresh database
#                        on the server tests/with-postgres.sh finds, dropped afterwards)
#   SOAK_THREADS         wrk threads, one connection each (default 4)
#   SOAK_USERS           users registered through POST /users (default 50)
#   SOAK_MIX             request weights, e.g. "login=20,bad_large=0" (see soak.lua)
#   SOAK_SAMPLE_SECONDS  RSS sampling period (default 10)
#   SOAK_WARMUP_SECONDS  samples before this are not the "start" (default 30; a quarter of
#                        SOAK_SECONDS when that is under 120)
#   SOAK_RSS_GROWTH_PCT, SOAK_RSS_SLACK_MIB   the memory rule above (20, 8)
#   SOAK_NO_BUILD=1      use the release binary as it is
set -euo pipefail
BENCH_T0="$(date +%s)"
LOG_TAG=soak
export BENCH_T0 LOG_TAG
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../bench/lib.sh"

backend="${SOAK_BACKEND:-sqlite}"
[[ "$backend" == sqlite || "$backend" == postgres ]] || die "SOAK_BACKEND must be sqlite or postgres"
for v in SOAK_SECONDS SOAK_RSS_GROWTH_PCT SOAK_RSS_SLACK_MIB; do
  [[ -z "${!v:-}" || "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a whole number"
done

# ---- tools ----
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
if [[ "$backend" == postgres ]]; then command -v psql >/dev/null || need+=(postgresql-client); fi
apt_install "${need[@]}"
command -v cargo >/dev/null || die "cargo is required (https://rustup.rs)"

# ---- build ----
if [[ "${SOAK_NO_BUILD:-}" != 1 ]]; then
  log "building: cargo build --release -p sesame-server"
  (cd "$ROOT" && cargo build --release -p sesame-server) >&2
fi
SOAK_BIN="$(sesame_bin)"
[[ -x "$SOAK_BIN" ]] || die "no release binary at $SOAK_BIN"
export SOAK_BIN SOAK_BACKEND="$backend"
log "using $SOAK_BIN"

if [[ "$backend" == postgres ]]; then
  exec "$ROOT/tests/with-postgres.sh" "$ROOT/tests/soak/soak.sh"
fi
exec "$ROOT/tests/soak/soak.sh"
