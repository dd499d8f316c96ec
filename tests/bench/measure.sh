#!/usr/bin/env bash
# The measuring half of `make bench` (run.sh installs and builds, then calls this under
# tests/with-postgres.sh). For each backend (Postgres, then SQLite) it creates a fresh
# database, seeds it, starts `sesame serve` on a free loopback port and runs wrk from a
# separate process against it, every run bounded in time, in this order:
#   1  GET /healthz                                  the ceiling for authenticated routes
#   2  GET /me, session cookie (1e3 sessions stored; cycling through all 1000 handles)
#   3  GET /me, bearer JWT (one token)
#   3m GET /me, bearer, while a scraper GETs /metrics every 100 ms (n/a when no /metrics)
#   5  POST /login, API-key exchange (client_credentials form, HTTP Basic; one client)
#   1' GET /healthz again: ratios to /healthz use the mean of 1 and 1'
#   R  1e5 sessions stored; GET /me, cookie, cycling through all of them; then the
#      server's RSS (before any password login: argon2's 19 MiB blocks come later)
#   4c argon2id ceiling: `sesame bench-hash`, verifications/s on every core
#   4  POST /login, password (cycling through 1000 users; every request a real verify),
#      three times, each followed by the ceiling again: each run is compared with the
#      mean of the ceilings before and after it, and the median ratio is the figure
#   6  GET /healthz, a light probe (wrk -t1 -c4, 10 ms between requests on each
#      connection) during a login flood (wrk -t1 -c64, POST /login)
#   7  GET /me, session cookie with BENCH_LARGE (1e6) sessions stored (1000 handles
#      spread over the whole set)
#   5g/5G the exchange with 1e2 clients stored, then 1e5 (100 keys each, client_secret_post)
#   9g/9G the refresh grant spending 1e3 tokens once with 1e3 stored, then with 1e6 stored
# then stops the server and drops the database. Finally table.py renders one markdown
# table with the ratios against their targets, printed and written to results/latest.md.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECS="${BENCH_SECONDS:-5}"
BIN="${BENCH_BIN:?run tests/bench/run.sh (make bench), not this script}"
BACKENDS="${BENCH_BACKENDS:-postgres sqlite}"
SMALL=1000
MID=100000
LARGE="${BENCH_LARGE:-1000000}"
USERS=1000
GROW_CLIENTS="${BENCH_GROW_CLIENTS:-100000}"
GROW_REFRESH="${BENCH_GROW_REFRESH:-1000000}"
[[ "$LARGE" =~ ^[0-9]+$ && "$LARGE" -ge "$MID" ]] || die "BENCH_LARGE must be at least $MID"
# Shared by every seeded user (one real argon2id hash, made by `sesame user add`).
PASSWORD='correct horse battery staple, benchmarked'
# Seed of the derived session handles (see seed.py); new every run.
HANDLE_SEED="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
COOKIE=sesame_session
# Only to try the scraping scenario against another route while /metrics is missing.
METRICS_PATH="${BENCH_METRICS_PATH:-/metrics}"
OUT="$RAW/results.txt"
mkdir -p "$RAW"
: >"$OUT"

# Only the settings below reach the server, whatever the caller's shell exports.
for var in $(compgen -e); do
  if [[ "$var" == SESAME_* && "$var" != SESAME_TEST_DATABASE_URL ]]; then unset "$var"; fi
done
unset DATABASE_URL

PG_BASE=""
if [[ " $BACKENDS " == *" postgres "* ]]; then
  url="${SESAME_TEST_DATABASE_URL:?tests/with-postgres.sh sets it}"
  url="${url%%\?*}"
  [[ "$url" =~ ^(postgres(ql)?://[^/]+) ]] || die "cannot parse $url"
  PG_BASE="${BASH_REMATCH[1]}"
fi

SERVER_PID="" BG_PIDS=() PG_DB="" TMPD=""
cleanup() {
  local pid
  for pid in "${BG_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
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

stop_server() {
  [[ -n "$SERVER_PID" ]] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  local i
  for ((i = 0; i < 100; i++)); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

meta() { printf 'meta %s\n' "$*" >>"$OUT"; }
record() { printf '%s %s %s\n' "$B" "$1" "$2" >>"$OUT"; }

# ---- seeding ----
seed_users() {
  case "$B" in
    postgres)
      psql "$DB_URL" -v ON_ERROR_STOP=1 -v users="$USERS" -q <<'SQL'
INSERT INTO users (id, email, password_hash, created_at)
SELECT md5('bench-user-' || j)::uuid, 'user' || j || '@bench.test',
       (SELECT password_hash FROM users WHERE email = 'user0@bench.test'), now()
FROM generate_series(1, :users - 1) AS j;
SQL
      ;;
    sqlite) python3 "$BENCH_DIR/seed.py" sqlite-users "$SQLITE_FILE" "$USERS" ;;
  esac
}

# seed_sessions FROM TO: sessions FROM..TO-1 with handles derived as in seed.py, last
# seen 5 minutes ago, so that each one's first use in the run writes its (coalesced)
# last-seen touch, whenever it was seeded: the small and large cases of scenario 7 do the
# same work.
seed_sessions() {
  case "$B" in
    postgres)
      psql "$DB_URL" -v ON_ERROR_STOP=1 -v users="$USERS" -v seed="$HANDLE_SEED" \
        -v from="$1" -v to="$2" -q <<'SQL'
INSERT INTO sessions (id, user_id, handle_hash, csrf_token, created_at, last_seen_at, user_agent, ip)
SELECT gen_random_uuid(), md5('bench-user-' || (1 + i % (:users - 1)))::uuid,
       sha256(convert_to(h, 'UTF8')), md5('csrf-' || :'seed' || '-' || i),
       now() - interval '5 minutes', now() - interval '5 minutes', 'bench-seed', '127.0.0.1'
FROM generate_series(:from, :to - 1) AS i,
     LATERAL (SELECT rtrim(translate(encode(sha256(convert_to(:'seed' || ':' || i, 'UTF8')),
                                            'base64'), '+/', '-_'), '=') AS h) AS handle;
SQL
      psql "$DB_URL" -qc 'VACUUM ANALYZE sessions'
      ;;
    sqlite) python3 "$BENCH_DIR/seed.py" sqlite-sessions "$SQLITE_FILE" "$HANDLE_SEED" "$1" "$2" "$USERS" ;;
  esac
}

count_rows() {
  case "$B" in
    postgres) psql "$DB_URL" -Atc "SELECT count(*) FROM $1" ;;
    sqlite) python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM " + sys.argv[2]).fetchone()[0])' "$SQLITE_FILE" "$1" ;;
  esac
}
count_sessions() { count_rows sessions; }

handles() { python3 "$BENCH_DIR/seed.py" handles "$HANDLE_SEED" "$@"; }

# login_form_works BASE FILE WHAT: POST /login with FILE's first form body must answer 200.
login_form_works() {
  local code
  code="$(head -1 "$2" | tr -d '\n' | curl -s -o /dev/null -w '%{http_code}' \
    -H 'Content-Type: application/x-www-form-urlencoded' --data-binary @- "$1/login")"
  [[ "$code" == 200 ]] || die "$3: $code"
}

# seed_clients FROM TO: clients FROM..TO-1 of user1, one API key each (see seed.py).
seed_clients() {
  local owner
  owner="$(python3 -c 'import hashlib,uuid; print(uuid.UUID(hashlib.md5(b"bench-user-1").hexdigest()))')"
  case "$B" in
    postgres)
      python3 "$BENCH_DIR/seed.py" clients-sql "$HANDLE_SEED" "$1" "$2" "$owner" | psql "$DB_URL" -v ON_ERROR_STOP=1 -q
      psql "$DB_URL" -qc 'VACUUM ANALYZE clients' -c 'VACUUM ANALYZE api_keys'
      ;;
    sqlite) python3 "$BENCH_DIR/seed.py" sqlite-clients "$SQLITE_FILE" "$HANDLE_SEED" "$1" "$2" "$owner" ;;
  esac
}

# exchange_growth BASE: 5g, the exchange cycling 100 keys with 1e2 clients stored; 5G, 100
# keys never used before spread over GROW_CLIENTS clients stored.
exchange_growth() {
  local base="$1" code
  seed_clients 0 99
  python3 "$BENCH_DIR/seed.py" exchange-bodies "$HANDLE_SEED" 0 99 >"$TMPD/exchange_small.bodies"
  login_form_works "$base" "$TMPD/exchange_small.bodies" "the exchange with a seeded client's key"
  log "[$B] 5g POST /login, exchange, 100 keys of 1e2 clients"
  record exchange_small "$(BENCH_METHOD=POST BENCH_BODIES="$TMPD/exchange_small.bodies" \
    run_wrk "$B.exchange_small" 2 32 "$SECS" "$base/login")"
  log "[$B] seeding $GROW_CLIENTS clients"
  seed_clients 99 "$((GROW_CLIENTS - 2))"
  python3 "$BENCH_DIR/seed.py" exchange-bodies "$HANDLE_SEED" 599 "$((GROW_CLIENTS - 2))" \
    "$(((GROW_CLIENTS - 600) / 100))" | head -100 >"$TMPD/exchange_large.bodies"
  log "[$B] 5G POST /login, exchange, 100 keys spread over $GROW_CLIENTS clients"
  record exchange_large "$(BENCH_METHOD=POST BENCH_BODIES="$TMPD/exchange_large.bodies" \
    run_wrk "$B.exchange_large" 2 32 "$SECS" "$base/login") clients=$(count_rows clients)"
}

# seed_refresh CLIENT FROM TO: refresh tokens FROM..TO-1 of CLIENT for user1, one family
# each, derived as in seed.py.
seed_refresh() {
  case "$B" in
    postgres)
      psql "$DB_URL" -v ON_ERROR_STOP=1 -v seed="$HANDLE_SEED" -v client="$1" -v from="$2" -v to="$3" \
        -v user="$(python3 -c 'import hashlib,uuid; print(uuid.UUID(hashlib.md5(b"bench-user-1").hexdigest()))')" -q <<'SQL'
CREATE TEMP TABLE seeded AS
SELECT gen_random_uuid() AS family,
       'rt_' || rtrim(translate(encode(sha256(convert_to(:'seed' || ':rt:' || i, 'UTF8')), 'base64'),
                                '+/', '-_'), '=') AS token
FROM generate_series(:from, :to - 1) AS i;
INSERT INTO refresh_families (id, client_id, user_id, scopes, resources, auth_time, grant_version,
                              created_at, last_used_at)
SELECT family, :'client', :'user'::uuid, 'bench:read', '', now(), 0, now(), now() FROM seeded;
INSERT INTO refresh_tokens (token_hash, family_id, created_at)
SELECT sha256(convert_to(token, 'UTF8')), family, now() FROM seeded;
SQL
      psql "$DB_URL" -qc 'VACUUM ANALYZE refresh_families' -c 'VACUUM ANALYZE refresh_tokens'
      ;;
    sqlite) python3 "$BENCH_DIR/seed.py" sqlite-refresh "$SQLITE_FILE" "$HANDLE_SEED" "$2" "$3" "$1" ;;
  esac
}

# delegated BASE: §10's paths. user1 signs in and approves a public client once; then
# 8: GET /authorize with that standing grant (a code each time, no page), and 9: the
# refresh grant, each request spending a refresh token of its own (seeded, one family
# each), so every one rotates.
delegated() {
  local base="$1" client client_id login cookie csrf query code tokens
  client="$("$BIN" client add --owner user0@bench.test --name delegated --scope bench:read \
    --public --redirect-uri https://app.bench.test/cb)"
  client_id="$(awk '$1=="client_id:"{print $2}' <<<"$client")"
  [[ -n "$client_id" ]] || die "sesame client add --public printed no client_id"
  login="$(curl -s -D "$TMPD/user1.h" -H 'Content-Type: application/json' \
    -d "{\"email\":\"user1@bench.test\",\"password\":\"$PASSWORD\"}" "$base/login")"
  cookie="$(awk -v c="$COOKIE" 'tolower($1)=="set-cookie:" && index($2, c"=")==1 {split($2, a, ";"); print a[1]}' "$TMPD/user1.h")"
  csrf="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["csrf_token"])' "$login")"
  [[ -n "$cookie" && -n "$csrf" ]] || die "user1's login gave no session"
  query="response_type=code&client_id=$client_id&redirect_uri=https%3A%2F%2Fapp.bench.test%2Fcb&scope=bench%3Aread&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
  code="$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H "Cookie: $cookie" -H "Origin: $base" \
    --data-urlencode "request=$query" --data-urlencode "csrf_token=$csrf" -d decision=approve "$base/authorize")"
  [[ "$code" == "303 https://app.bench.test/cb?code=ac_"* ]] || die "consent: $code"
  code="$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "$base/authorize?$query")"
  [[ "$code" == 303 ]] || die "GET /authorize with a standing grant: $code"
  log "[$B] 8 GET /authorize, standing grant (a code each)"
  record authorize "$(run_wrk "$B.authorize" 2 32 "$SECS" "$base/authorize?$query" -H "Cookie: $cookie")"

  # 9g: 1e3 tokens stored, each spent once (a latency figure: the run ends when they are).
  refresh_once "$base" "$client_id" 10000000 9g refresh_small

  # Enough tokens that no thread comes back to one it spent: 8 000 a second, 100 000 at least.
  tokens=$((SECS * 8000 > 100000 ? SECS * 8000 : 100000))
  log "[$B] seeding $tokens refresh tokens"
  seed_refresh "$client_id" 0 "$((tokens + 1))"
  python3 "$BENCH_DIR/seed.py" refresh-bodies "$HANDLE_SEED" 0 "$((tokens + 1))" "$client_id" >"$TMPD/refresh.bodies"
  login_form_works "$base" "$TMPD/refresh.bodies" "the refresh grant with a seeded token"
  sed -i 1d "$TMPD/refresh.bodies"
  log "[$B] 9 POST /login, refresh grant (each token spent once)"
  record refresh "$(BENCH_METHOD=POST BENCH_BODIES="$TMPD/refresh.bodies" \
    run_wrk "$B.refresh" 2 32 "$SECS" "$base/login")"

  # 9G: the same with GROW_REFRESH more stored.
  log "[$B] seeding $GROW_REFRESH refresh tokens"
  seed_refresh "$client_id" 20000000 "$((20000000 + GROW_REFRESH))"
  refresh_once "$base" "$client_id" 30000000 9G refresh_large
}

# refresh_once BASE CLIENT FROM ROW KEY: seeds refresh tokens FROM..FROM+999 and spends
# each once (2 threads, 32 connections), recording the latency.
refresh_once() {
  local base="$1" client_id="$2" from="$3"
  seed_refresh "$client_id" "$from" "$((from + 1000))"
  python3 "$BENCH_DIR/seed.py" refresh-bodies "$HANDLE_SEED" "$from" "$((from + 1000))" "$client_id" \
    >"$TMPD/$5.bodies"
  log "[$B] $4 POST /login, refresh grant, 1000 tokens spent once ($(count_rows refresh_tokens) stored)"
  # What the server read meanwhile (/proc rchar: from the OS page cache or the disk),
  # a KiB figure per request: growth that reads more pages shows here.
  local read_before result
  read_before="$(read_bytes "$SERVER_PID")"
  result="$(BENCH_METHOD=POST BENCH_BODIES="$TMPD/$5.bodies" BENCH_ONCE=2 \
    run_wrk "$B.$5" 2 32 3 "$base/login")"
  record "$5" "$result stored=$(count_rows refresh_tokens) read_kib_per_request=$(python3 -c \
    'import sys; print(round((int(sys.argv[2]) - int(sys.argv[1])) / 1024 / max(1, int(sys.argv[3])), 1))' \
    "$read_before" "$(read_bytes "$SERVER_PID")" "$(field "$result" requests)")"
}

# ---- one backend ----
bench_backend() {
  B="$1"
  TMPD="$(mktemp -d "${TMPDIR:-/tmp}/sesame-bench.XXXXXX")"
  case "$B" in
    postgres)
      PG_DB="sesame_bench_$$_$RANDOM"
      psql "$PG_BASE/postgres" -qc "CREATE DATABASE \"$PG_DB\"" >/dev/null
      DB_URL="$PG_BASE/$PG_DB"
      meta "postgres_server $(psql "$PG_BASE/postgres" -Atc 'SHOW server_version') (fsync=$(psql "$PG_BASE/postgres" -Atc 'SHOW fsync'), shared_buffers=$(psql "$PG_BASE/postgres" -Atc 'SHOW shared_buffers'))"
      ;;
    sqlite)
      SQLITE_FILE="$TMPD/sesame.db"
      DB_URL="sqlite://$SQLITE_FILE"
      meta "sqlite_file $(df -T "$TMPD" | awk 'NR==2{print $2}') filesystem"
      ;;
    *) die "unknown backend $B (postgres or sqlite)" ;;
  esac
  local port base
  port="$(free_port)"
  base="http://127.0.0.1:$port"
  export SESAME_DATABASE_URL="$DB_URL" SESAME_LISTEN="127.0.0.1:$port" SESAME_LOG=warn SESAME_LOG_FORMAT=json \
    SESAME_THROTTLE_ACCOUNT_IP=1000000/1m SESAME_THROTTLE_ACCOUNT=1000000/1m \
    SESAME_THROTTLE_IP=1000000/1m

  log "[$B] seeding: $USERS users (one argon2id hash), $SMALL sessions, one client"
  "$BIN" migrate >/dev/null
  printf '%s\n' "$PASSWORD" | "$BIN" user add user0@bench.test --password-stdin >/dev/null
  seed_users
  seed_sessions 0 "$SMALL"
  local client client_id api_key basic
  client="$("$BIN" client add --owner user0@bench.test --name bench --scope bench:read)"
  client_id="$(awk '$1=="client_id:"{print $2}' <<<"$client")"
  api_key="$(awk '$1=="api_key:"{print $2}' <<<"$client")"
  [[ -n "$client_id" && -n "$api_key" ]] || die "sesame client add printed no client_id/api_key"
  # RFC 6749 §2.3.1: each part form-urlencoded, then Basic.
  basic="$(python3 -c 'import base64,sys,urllib.parse as u; print(base64.b64encode((u.quote_plus(sys.argv[1])+":"+u.quote_plus(sys.argv[2])).encode()).decode())' "$client_id" "$api_key")"
  handles 0 "$SMALL" >"$TMPD/small.handles"

  "$BIN" serve >"$RAW/$B.server.log" 2>&1 &
  SERVER_PID=$!
  wait_http "$base/healthz" 60 || { tail -20 "$RAW/$B.server.log" >&2; die "sesame did not answer /healthz"; }
  log "[$B] sesame pid $SERVER_PID on $base"

  # Each scenario's request must succeed before it is measured.
  local code token metrics
  code="$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE=$(head -1 "$TMPD/small.handles")" "$base/me")"
  [[ "$code" == 200 ]] || die "GET /me with a seeded session cookie: $code"
  curl -s -D "$TMPD/login.h" -o /dev/null -H 'Content-Type: application/json' \
    -d "{\"email\":\"user1@bench.test\",\"password\":\"$PASSWORD\"}" "$base/login"
  grep -qi "^set-cookie: $COOKIE=" "$TMPD/login.h" || die "POST /login (user1) set no $COOKIE cookie: $(head -1 "$TMPD/login.h")"
  token="$(curl -s -H "Authorization: Basic $basic" -d grant_type=client_credentials "$base/login" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')" \
    || die "the API-key exchange gave no access_token"
  code="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$base/me")"
  [[ "$code" == 200 ]] || die "GET /me with the bearer token: $code"
  metrics="$(curl -s -o /dev/null -w '%{http_code}' "$base$METRICS_PATH")"
  record metrics "status=$metrics"

  # The ceiling: a bare axum app on sesame's runtime and hyper settings, no middleware.
  local bare_port bare_pid
  bare_port="$(free_port)"
  SESAME_LISTEN="127.0.0.1:$bare_port" "$BIN" bench-bare >"$RAW/$B.bare.log" 2>&1 &
  bare_pid=$!
  BG_PIDS+=("$bare_pid")
  wait_http "http://127.0.0.1:$bare_port/healthz" 30 || die "the bare server did not answer"
  log "[$B] 1b GET /healthz, bare axum (no middleware)"
  record bare "$(run_wrk "$B.bare" 2 32 "$SECS" "http://127.0.0.1:$bare_port/healthz")"
  kill -TERM "$bare_pid" 2>/dev/null || true
  wait "$bare_pid" 2>/dev/null || true
  BG_PIDS=()
  log "[$B] 1 GET /healthz"
  record healthz "$(run_wrk "$B.healthz" 2 32 "$SECS" "$base/healthz")"
  log "[$B] 2 GET /me, cookie ($SMALL sessions)"
  record me_cookie "$(BENCH_HANDLES="$TMPD/small.handles" BENCH_COOKIE=$COOKIE \
    run_wrk "$B.me_cookie" 2 32 "$SECS" "$base/me")"
  log "[$B] 3 GET /me, bearer"
  record me_bearer "$(run_wrk "$B.me_bearer" 2 32 "$SECS" "$base/me" -H "Authorization: Bearer $token")"
  if [[ "$metrics" == 200 ]]; then
    log "[$B] 3m GET /me, bearer, with /metrics scraped every 100 ms"
    BENCH_DELAY_MS=100 start_wrk "$B.metrics_scrape" 1 1 "$((SECS + 1))" "$base$METRICS_PATH"
    local scraper=$WRK_PID
    BG_PIDS+=("$scraper")
    sleep 0.5
    record me_bearer_scraped "$(run_wrk "$B.me_bearer_scraped" 2 32 "$SECS" "$base/me" -H "Authorization: Bearer $token")"
    wait "$scraper" || true
    record metrics_scrape "$(wrk_result "$B.metrics_scrape" "$scraper")"
  else
    log "[$B] 3m skipped: GET $METRICS_PATH answers $metrics"
  fi
  log "[$B] 10 GET /auth/verify, cookie (forward auth for a proxy)"
  record verify_cookie "$(BENCH_HANDLES="$TMPD/small.handles" BENCH_COOKIE=$COOKIE \
    run_wrk "$B.verify_cookie" 2 32 "$SECS" "$base/auth/verify" \
    -H 'X-Forwarded-Method: GET' -H 'X-Forwarded-Uri: /app/notes')"
  log "[$B] 11 GET /auth/verify, bearer"
  record verify_bearer "$(run_wrk "$B.verify_bearer" 2 32 "$SECS" "$base/auth/verify" \
    -H "Authorization: Bearer $token" -H 'X-Forwarded-Method: GET' -H 'X-Forwarded-Uri: /app/notes')"
  log "[$B] 5 POST /login, API-key exchange"
  record exchange "$(BENCH_METHOD=POST BENCH_BODY='grant_type=client_credentials' \
    run_wrk "$B.exchange" 2 32 "$SECS" "$base/login" \
    -H "Authorization: Basic $basic" -H 'Content-Type: application/x-www-form-urlencoded')"
  exchange_growth "$base"
  delegated "$base"
  if [[ "$B" == postgres ]]; then
    # A second instance on the same database: how long until it refuses a token revoked
    # on the first (NOTIFY, with the 1 s poll behind it).
    local other_port other_pid
    other_port="$(free_port)"
    SESAME_LISTEN="127.0.0.1:$other_port" SESAME_ISSUER="$base" "$BIN" serve >"$RAW/$B.second.log" 2>&1 &
    other_pid=$!
    BG_PIDS+=("$other_pid")
    wait_http "http://127.0.0.1:$other_port/healthz" 60 || die "the second instance did not answer"
    log "[$B] 12 cross-instance revocation: revoke on one instance, until the other refuses (200 samples)"
    local latency
    latency="$(python3 "$BENCH_DIR/revocation.py" tokens "$base" "http://127.0.0.1:$other_port" "$basic" 200)" \
      || die "the cross-instance revocation measurement failed"
    record revocation "$latency"
    log "[$B] 12s cross-instance logout: sign out on one instance, until the other refuses the cookie (200 samples)"
    latency="$(python3 "$BENCH_DIR/revocation.py" sessions "$base" "http://127.0.0.1:$other_port" \
      user1@bench.test "$PASSWORD" 200)" || die "the cross-instance logout measurement failed"
    record logout_elsewhere "$latency"
    kill -TERM "$other_pid" 2>/dev/null || true
    wait "$other_pid" 2>/dev/null || true
    BG_PIDS=()
  fi
  # Again, so that the ratios to /healthz use the mean of two runs around them.
  log "[$B] 1' GET /healthz again"
  record healthz_again "$(run_wrk "$B.healthz_again" 2 32 "$SECS" "$base/healthz")"
  log "[$B] growing to $MID sessions"
  seed_sessions "$SMALL" "$MID"
  handles 0 "$MID" >"$TMPD/mid.handles"
  log "[$B] R GET /me, cookie, cycling through $MID sessions"
  record exercise "$(BENCH_HANDLES="$TMPD/mid.handles" BENCH_COOKIE=$COOKIE \
    run_wrk "$B.exercise" 2 32 "$SECS" "$base/me")"
  record rss_mid "rss_kb=$(rss_kb "$SERVER_PID") hwm_kb=$(hwm_kb "$SERVER_PID") sessions=$(count_sessions)"

  # Three login runs, each between two ceilings: each is compared with the mean of the
  # ceilings around it, and the median of the three ratios is the figure.
  log "[$B] 4c argon2id ceiling: sesame bench-hash --seconds $SECS"
  record ceiling0 "$("$BIN" bench-hash --seconds "$SECS")"
  local run
  for run in 1 2 3; do
    log "[$B] 4 POST /login, password (run $run of 3)"
    record "login$run" "$(BENCH_METHOD=POST BENCH_USERS=$USERS BENCH_PASSWORD="$PASSWORD" \
      run_wrk "$B.login$run" 2 32 "$SECS" "$base/login")"
    log "[$B] 4c argon2id ceiling again"
    record "ceiling$run" "$("$BIN" bench-hash --seconds "$SECS")"
  done
  log "[$B] 6 GET /healthz during a login flood"
  BENCH_METHOD=POST BENCH_USERS=$USERS BENCH_PASSWORD="$PASSWORD" \
    start_wrk "$B.flood_login" 1 64 "$((SECS + 2))" "$base/login"
  local flood=$WRK_PID
  BG_PIDS+=("$flood")
  sleep 1
  record flood_healthz "$(BENCH_DELAY_MS=10 run_wrk "$B.flood_healthz" 1 4 "$SECS" "$base/healthz")"
  wait "$flood" || true
  record flood_login "$(wrk_result "$B.flood_login" "$flood")"
  BG_PIDS=()

  log "[$B] growing to $LARGE sessions"
  seed_sessions "$MID" "$LARGE"
  # About SMALL handles spread evenly over the whole set.
  handles "$SMALL" "$LARGE" "$(((LARGE - SMALL) / SMALL))" >"$TMPD/large.handles"
  log "[$B] 7 GET /me, cookie ($LARGE sessions)"
  record me_cookie_large "$(BENCH_HANDLES="$TMPD/large.handles" BENCH_COOKIE=$COOKIE \
    run_wrk "$B.me_cookie_large" 2 32 "$SECS" "$base/me")"
  record peak "rss_kb=$(rss_kb "$SERVER_PID") hwm_kb=$(hwm_kb "$SERVER_PID") sessions=$(count_sessions)"
  cleanup
  log "[$B] done"
}

meta "date $(date -u '+%Y-%m-%d %H:%M UTC')"
meta "cpu $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo), nproc=$(nproc), $(awk '/^MemTotal/{printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
meta "load_before $(cut -d' ' -f1-3 /proc/loadavg)"
meta "commit $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet HEAD 2>/dev/null || echo '+dirty')"
meta "wrk $(wrk -v 2>&1 | awk 'NR==1{print $2}'), -t2 -c32 -d${SECS}s unless noted, loopback"
meta "seconds $SECS"
meta "sizes small=$SMALL mid=$MID large=$LARGE users=$USERS"

for backend in $BACKENDS; do
  bench_backend "$backend"
done
meta "elapsed $(($(date +%s) - BENCH_T0))"
python3 "$BENCH_DIR/table.py" "$OUT" | tee "$RESULTS/latest.md"
log "wrote $RESULTS/latest.md (raw wrk and server logs in $RAW/)"
