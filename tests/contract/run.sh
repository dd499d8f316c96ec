#!/usr/bin/env bash
# Contract tests for the OpenAPI document and the server that serves it:
#   1. installs pinned schemathesis and openapi-spec-validator into ./.venv (if missing or
#      if tests/contract/requirements.txt changed);
#   2. validates openapi/openapi.json as OpenAPI 3.1;
#   3. builds sesame and starts it on a fresh SQLite database in a temporary directory, on
#      a free loopback port, and signs in four users (seed.py);
#   4. runs authlib's client-credentials flow with RFC 8707 resources, and PyJWT on what it
#      gets (clients.py);
#   5. runs schemathesis against the live /openapi.json for every operation, with checks
#      for server errors and for status codes, content types, headers and bodies that the
#      document does not describe, on a bounded number of examples;
#   6. fails on any failure, or on any error the server logged; always stops the server.
#
# Settings (environment):
#   SESAME_CONTRACT_EXAMPLES  examples per operation and phase (default 300)
#   SESAME_CONTRACT_SEED      schemathesis seed (default 1, so CI runs are repeatable;
#                             "random" for a new one each run)
#   CARGO, PYTHON             the cargo and python3 to use
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/tests/contract"
cd "$root"
cargo=${CARGO:-cargo}
python=${PYTHON:-python3}
examples=${SESAME_CONTRACT_EXAMPLES:-300}
seed=${SESAME_CONTRACT_SEED:-1}
started=$SECONDS

say() { echo "contract: $*" >&2; }

# 1. Tools.
venv="$root/.venv"
stamp="$venv/.contract-requirements"
if [ ! -x "$venv/bin/schemathesis" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
  command -v "$python" >/dev/null 2>&1 || { say "$python is required (CPython 3.10 or later)"; exit 1; }
  say "installing the pinned tools into .venv"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi

# 2. The committed document is valid OpenAPI 3.1.
"$venv/bin/openapi-spec-validator" --schema 3.1 openapi/openapi.json

# 3. A live server of its own.
"$cargo" build --quiet -p sesame-server
target_dir=$("$cargo" metadata --format-version 1 --no-deps |
  "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
sesame="$target_dir/debug/sesame"

work=$(mktemp -d "${TMPDIR:-/tmp}/sesame-contract.XXXXXX")
server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
trap 'stop_server; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
# Only the settings below: none of the caller's SESAME_* variables reach this server.
unset_sesame=()
for name in $(compgen -e); do
  case $name in SESAME_*|DATABASE_URL) unset_sesame+=(-u "$name") ;; esac
done
env "${unset_sesame[@]}" \
  SESAME_DATABASE_URL="sqlite://$work/sesame.db" \
  SESAME_LISTEN="127.0.0.1:$port" \
  SESAME_ISSUER="$base" \
  SESAME_LOG_FORMAT=json \
  SESAME_RESOURCES="https://notes.example.com,https://billing.example.com/api" \
  "$sesame" serve >"$work/server.log" 2>&1 &
server_pid=$!

# A's password is the one in PUT /me/password's example, so that the example changes it
# once (a password change keeps the session that made it) and the 204 is tested too.
if ! seeded=$("$venv/bin/python" "$here/seed.py" "$base" "A=correct horse battery staple" B C D); then
  say "the server's log:"; tail -n 40 "$work/server.log" >&2
  exit 1
fi
eval "$seeded"

# 4. Off-the-shelf OAuth tooling, unchanged (before schemathesis spends the registration
# budget of this address).
status=0 passed=1 failed=0 # the document's validation above counts as one
if "$venv/bin/python" "$here/clients.py" "$base" https://notes.example.com https://billing.example.com/api; then
  passed=$((passed + 1))
else
  status=1 failed=$((failed + 1))
fi

# 5. Schemathesis, in passes signed in as different users, so that no operation ends the
# session another one is tested with: a login presenting a cookie ends that session (no
# fixation), a logout ends its own, and DELETE /sessions/{id} ends one by id (the ids
# schemathesis learns from A's GET /sessions are not B's). positive_data_acceptance is
# left out: input that fits the schema may still be refused by design (a wrong password
# is 401, a taken email 409).
seed_option=(--seed "$seed")
[ "$seed" = random ] && seed_option=()
run_pass() {
  local user=$1; shift
  local session_var=SESAME_CONTRACT_SESSION_$user csrf_var=SESAME_CONTRACT_CSRF_$user
  say "schemathesis as user $user against $base ($examples examples per operation and phase, seed $seed)"
  (cd "$work" && SESAME_CONTRACT_SESSION=${!session_var} SESAME_CONTRACT_CSRF=${!csrf_var} \
    "$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" run "$base/openapi.json" "$@" \
    --checks all --exclude-checks positive_data_acceptance \
    --max-examples "$examples" "${seed_option[@]}" \
    --workers 2 --request-timeout 30 \
    --generation-database none --no-color) && passed=$((passed + 1)) || { status=1; failed=$((failed + 1)); }
}
# The token path (revocation) runs last: revoking the seeded token, or deleting the
# seeded client, must not pull credentials from under the other passes.
run_pass A --exclude-path /login --exclude-path /logout --exclude-path '/sessions/{id}' --exclude-path /oauth/revoke
# Passes of one operation have no links to follow, so no stateful phase.
single=(--phases examples,coverage,fuzzing)
run_pass B --include-path '/sessions/{id}' "${single[@]}"
run_pass C --include-path /logout "${single[@]}"
run_pass D --include-path /login "${single[@]}"
run_pass D --include-path /oauth/revoke "${single[@]}"

# 6. The server must have survived, and logged no error of its own.
if ! kill -0 "$server_pid" 2>/dev/null; then
  say "the server stopped during the run; its log:"; tail -n 40 "$work/server.log" >&2
  status=1 failed=$((failed + 1))
elif grep -q '"level":"ERROR"' "$work/server.log"; then
  say "the server logged errors:"; grep '"level":"ERROR"' "$work/server.log" | head -n 20 >&2
  status=1 failed=$((failed + 1))
else
  passed=$((passed + 1))
fi
stop_server
say "finished in $((SECONDS - started)) s"
echo "contract: $passed passed, $failed failed"
exit "$status"
