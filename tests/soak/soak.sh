#!/usr/bin/env bash
# The running half of `make soak` (run.sh installs and builds, then calls this; under
# tests/with-postgres.sh for Postgres). It creates a fresh database (a temporary SQLite
# file, or a new Postgres database dropped afterwards), seeds it, starts `sesame serve`
# on a free loopback port and loads it for SOAK_SECONDS with wrk and soak.lua (one
# connection per wrk thread; the mix is described there). Meanwhile it samples the
# server's VmRSS, VmHWM, open files and threads every SOAK_SAMPLE_SECONDS and scrapes
# GET /metrics. At the end it scrapes /metrics again, counts the sessions and login
# failures stored, stops the server with SIGTERM, and report.py writes the verdict.
#
# Seeded: an owner made with `sesame user add`; two clients made with `sesame client add`
# (the good ones) and a decoy client; SOAK_USERS users and 5 decoy users registered
# through POST /users, each with its own password. Decoys only ever get wrong
# credentials. sesame runs with its default throttle budgets and SESAME_TRUST_PROXY=true:
# every request carries a random X-Forwarded-For, so the per-IP budgets are not spent by
# the wrong passwords, while the decoys' per-account budgets are (their 429s are
# expected).
#
# RSS "start" is the first sample at or after the warm-up (SOAK_WARMUP_SECONDS; default
# 30, or a quarter of SOAK_SECONDS when that is under 120), "end" the sample taken as wrk
# stops, "max" the largest sample. The pass rule is in run.sh's header and report.py.
set -euo pipefail
LOG_TAG=soak
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../bench/lib.sh"

SOAK_DIR="$ROOT/tests/soak"
SOAK_RESULTS="$SOAK_DIR/results"
SOAK_RAW="$SOAK_RESULTS/raw/${SOAK_BACKEND:-sqlite}"
BIN="${SOAK_BIN:?run tests/soak/run.sh (make soak), not this script}"
SECS="${SOAK_SECONDS:-600}"
BACKEND="${SOAK_BACKEND:-sqlite}"
THREADS="${SOAK_THREADS:-4}"
SAMPLE="${SOAK_SAMPLE_SECONDS:-10}"
USERS="${SOAK_USERS:-50}"
DECOYS=5
if ((SECS >= 120)); then WARMUP_DEFAULT=30; else WARMUP_DEFAULT=$((SECS / 4)); fi
WARMUP="${SOAK_WARMUP_SECONDS:-$WARMUP_DEFAULT}"
for v in SECS THREADS SAMPLE USERS WARMUP; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
((THREADS >= 1 && THREADS <= 64)) || die "SOAK_THREADS must be 1..64"
((SAMPLE >= 1)) || die "SOAK_SAMPLE_SECONDS must be at least 1"
((USERS >= 1)) || die "SOAK_USERS must be at least 1"
((WARMUP < SECS)) || die "the warm-up ($WARMUP s) must be shorter than SOAK_SECONDS ($SECS)"
COOKIE=sesame_session
OUT="$SOAK_RAW/results.txt"
mkdir -p "$SOAK_RAW"
rm -f "$SOAK_RAW"/*
: >"$OUT"

# Only the settings below reach the server, whatever the caller's shell exports.
for var in $(compgen -e); do
  if [[ "$var" == SESAME_* && "$var" != SESAME_TEST_DATABASE_URL ]]; then unset "$var"; fi
done
unset DATABASE_URL

SERVER_PID="" SAMPLER_PID="" PG_DB="" PG_BASE="" TMPD=""
cleanup() {
  if [[ -n "$SAMPLER_PID" ]]; then kill -TERM "$SAMPLER_PID" 2>/dev/null || true; fi
  stop_server
  if [[ -n "$PG_DB" ]]; then
    psql "$PG_BASE/postgres" -qc "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    PG_DB=""
  fi
  if [[ -n "$TMPD" ]]; then rm -rf "$TMPD"; fi
  TMPD=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stops the server with SIGTERM (as an operator would) and records how it went.
stop_server() {
  [[ -n "$SERVER_PID" ]] || return 0
  local i t0 status=0 killed=no
  t0="$(date +%s%N)"
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    killed=yes
  fi
  wait "$SERVER_PID" 2>/dev/null || status=$?
  meta "stop exit=$status ms=$((($(date +%s%N) - t0) / 1000000)) killed_after_30s=$killed"
  SERVER_PID=""
}

meta() { printf 'meta %s\n' "$*" >>"$OUT"; }

# Base64 of urlencoded(id):urlencoded(key), RFC 6749 §2.3.1.
basic() {
  python3 -c 'import base64,sys,urllib.parse as u; print(base64.b64encode((u.quote_plus(sys.argv[1])+":"+u.quote_plus(sys.argv[2])).encode()).decode())' "$1" "$2"
}

# "client_id api_key" from `sesame client add` output.
add_client() {
  local out id key
  out="$("$BIN" client add --owner owner@soak.test --name "$1" --scope soak:read)"
  id="$(awk '$1=="client_id:"{print $2}' <<<"$out")"
  key="$(awk '$1=="api_key:"{print $2}' <<<"$out")"
  [[ -n "$id" && -n "$key" ]] || die "sesame client add printed no client_id/api_key"
  printf '%s %s\n' "$id" "$key"
}

count_rows() {
  case "$BACKEND" in
    postgres) psql "$DB_URL" -Atc "SELECT count(*) FROM $1" ;;
    sqlite) python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM " + sys.argv[2]).fetchone()[0])' "$SQLITE_FILE" "$1" ;;
  esac
}

# One line per sample: seconds since wrk started, VmRSS and VmHWM (KiB), open files,
# threads. Also scrapes /metrics each time, as a monitoring system would.
sample() {
  local t="$1" st
  st="/proc/$SERVER_PID/status"
  [[ -r "$st" ]] || { printf '%s gone\n' "$t"; return; }
  printf '%s %s %s %s %s\n' "$t" "$(rss_kb "$SERVER_PID")" "$(hwm_kb "$SERVER_PID")" \
    "$(find "/proc/$SERVER_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)" \
    "$(awk '/^Threads:/{print $2}' "$st")"
}
sampler() {
  local t0 next=0 now
  t0="$(date +%s)"
  while :; do
    now=$(($(date +%s) - t0))
    if ((now >= next)); then
      sample "$now" >>"$SOAK_RAW/rss.txt"
      curl -s -o /dev/null --max-time 5 "$BASE/metrics" || true
      next=$((next + SAMPLE))
    fi
    sleep 0.5
  done
}

# ---- database ----
TMPD="$(mktemp -d "${TMPDIR:-/tmp}/sesame-soak.XXXXXX")"
case "$BACKEND" in
  postgres)
    url="${SESAME_TEST_DATABASE_URL:?tests/with-postgres.sh sets it}"
    url="${url%%\?*}"
    [[ "$url" =~ ^(postgres(ql)?://[^/]+) ]] || die "cannot parse $url"
    PG_BASE="${BASH_REMATCH[1]}"
    PG_DB="sesame_soak_$$_$RANDOM"
    psql "$PG_BASE/postgres" -qc "CREATE DATABASE \"$PG_DB\"" >/dev/null
    DB_URL="$PG_BASE/$PG_DB"
    meta "backend postgres $(psql "$PG_BASE/postgres" -Atc 'SHOW server_version') (fsync=$(psql "$PG_BASE/postgres" -Atc 'SHOW fsync'))"
    ;;
  sqlite)
    SQLITE_FILE="$TMPD/sesame.db"
    DB_URL="sqlite://$SQLITE_FILE"
    meta "backend sqlite ($(df -T "$TMPD" | awk 'NR==2{print $2}') file)"
    ;;
  *) die "SOAK_BACKEND must be sqlite or postgres (got '$BACKEND')" ;;
esac

PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
# The seeding registers every user from this one address: the registration budget (every
# attempt counts, 20 an hour by default) is widened for it; the login budgets stay as they are.
export SESAME_DATABASE_URL="$DB_URL" SESAME_LISTEN="127.0.0.1:$PORT" \
  SESAME_LOG=warn SESAME_LOG_FORMAT=json SESAME_TRUST_PROXY=true SESAME_THROTTLE_REGISTRATION=100000/1h

meta "date $(date -u '+%Y-%m-%d %H:%M UTC')"
meta "commit $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet HEAD 2>/dev/null || echo '+dirty')"
meta "binary sha256 $(sha256sum "$BIN" | cut -c1-12), built $(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC')"
meta "machine $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo), nproc=$(nproc), $(awk '/^MemTotal/{printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
meta "load_before $(cut -d' ' -f1-3 /proc/loadavg)"
meta "wrk $(wrk -v 2>&1 | awk 'NR==1{print $2}') -t$THREADS -c$THREADS -d${SECS}s --timeout 10s, loopback"
meta "seconds $SECS"
meta "warmup $WARMUP"
meta "sample $SAMPLE"
meta "seeded users=$USERS decoys=$DECOYS clients=2 decoy_clients=1"
meta "mix ${SOAK_MIX:-default}"
meta "rss_rule pct=${SOAK_RSS_GROWTH_PCT:-20} slack_mib=${SOAK_RSS_SLACK_MIB:-8}"

# ---- seeding (the CLI part, before the server starts) ----
log "[$BACKEND] seeding: an owner and three clients (CLI)"
"$BIN" migrate >/dev/null
python3 -c 'import secrets; print("soak-owner-" + secrets.token_urlsafe(12))' \
  | "$BIN" user add owner@soak.test --password-stdin >/dev/null
: >"$TMPD/clients"
for name in soak-a soak-b; do
  read -r id key <<<"$(add_client "$name")"
  printf '%s %s\n' "$id" "$(basic "$id" "$key")" >>"$TMPD/clients"
done
read -r decoy_id _ <<<"$(add_client soak-decoy)"
# The decoy with a wrong key; a well-formed client_id that does not exist (throttled
# like the decoy, so that 429s reveal nothing); a malformed one.
{
  basic "$decoy_id" "sk_wrong_$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
  basic "cli_$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')" "sk_unknown"
  basic "cli_not-a-client-id" "sk_unknown"
} >"$TMPD/bad_basics"

"$BIN" serve >"$SOAK_RAW/server.log" 2>&1 &
SERVER_PID=$!
wait_http "$BASE/healthz" 60 || { tail -20 "$SOAK_RAW/server.log" >&2; die "sesame did not answer /healthz"; }
log "[$BACKEND] sesame pid $SERVER_PID on $BASE"

# ---- seeding (through the API) ----
log "[$BACKEND] registering $USERS users and $DECOYS decoys (POST /users)"
register() {
  local code
  code="$(curl -s -o "$TMPD/register.out" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"$2\"}" "$BASE/users")"
  [[ "$code" == 201 ]] || die "POST /users $1: $code $(cat "$TMPD/register.out")"
}
: >"$TMPD/users"
: >"$TMPD/decoys"
for ((i = 0; i < USERS + DECOYS; i++)); do
  pw="soak-$(python3 -c 'import secrets; print(secrets.token_urlsafe(15))')"
  if ((i < USERS)); then
    email="user$i@soak.test"
    printf '%s %s\n' "$email" "$pw" >>"$TMPD/users"
  else
    email="decoy$((i - USERS))@soak.test"
    printf '%s\n' "$email" >>"$TMPD/decoys"
  fi
  register "$email" "$pw"
done

# ---- preflight: each way in works once, so that a broken setup fails here ----
read -r email pw <"$TMPD/users"
curl -s -D "$TMPD/login.h" -o "$TMPD/login.json" -H 'Content-Type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"$pw\"}" "$BASE/login"
cookie="$(sed -nE "s/^[Ss]et-[Cc]ookie: ($COOKIE=[^;]+).*/\\1/p" "$TMPD/login.h")"
[[ -n "$cookie" ]] || die "POST /login ($email) set no $COOKIE cookie: $(head -1 "$TMPD/login.h")"
code="$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "$BASE/me")"
[[ "$code" == 200 ]] || die "GET /me with a fresh session cookie: $code"
read -r _ b <"$TMPD/clients"
token="$(curl -s -H "Authorization: Basic $b" -d grant_type=client_credentials "$BASE/login" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')" \
  || die "the API-key exchange gave no access_token"
code="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$BASE/me")"
[[ "$code" == 200 ]] || die "GET /me with a bearer token: $code"
curl -sf "$BASE/metrics" >"$SOAK_RAW/metrics.before" || die "GET /metrics failed"

# ---- the soak ----
log "[$BACKEND] soaking for ${SECS}s: wrk -t$THREADS -c$THREADS, RSS sampled every ${SAMPLE}s"
sampler &
SAMPLER_PID=$!
wrk_status=0
SOAK_USERS_FILE="$TMPD/users" SOAK_DECOYS_FILE="$TMPD/decoys" SOAK_CLIENTS_FILE="$TMPD/clients" \
  SOAK_BAD_BASICS_FILE="$TMPD/bad_basics" SOAK_COOKIE="$COOKIE" \
  timeout --kill-after=10 $((SECS + 60)) \
  wrk -t"$THREADS" -c"$THREADS" -d"${SECS}s" --timeout 10s --latency \
  -s "$SOAK_DIR/soak.lua" "$BASE" >"$SOAK_RAW/wrk.log" 2>&1 || wrk_status=$?
kill -TERM "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""
printf 'end %s\n' "$(sample "$SECS")" >>"$SOAK_RAW/rss.txt"
meta "wrk_exit $wrk_status"
log "[$BACKEND] wrk done (exit $wrk_status)"

# ---- after ----
if kill -0 "$SERVER_PID" 2>/dev/null; then
  curl -s --max-time 10 "$BASE/metrics" >"$SOAK_RAW/metrics.after" || true
  meta "stored sessions=$(count_rows sessions) login_failures=$(count_rows login_failures)"
  stop_server
else
  meta "server_died during the soak"
  wait "$SERVER_PID" 2>/dev/null || meta "server_exit $?"
  SERVER_PID=""
fi
cleanup

status=0
python3 "$SOAK_DIR/report.py" "$SOAK_RAW" >"$SOAK_RAW/report.md" || status=$?
tee "$SOAK_RESULTS/latest.md" <"$SOAK_RAW/report.md"
cp "$SOAK_RAW/report.md" "$SOAK_RESULTS/$BACKEND.md"
log "wrote $SOAK_RESULTS/latest.md and $BACKEND.md (wrk log, server log, samples and metrics in $SOAK_RAW/)"
exit "$status"
