#!/usr/bin/env bash
# Runs a command with SESAME_TEST_DATABASE_URL pointing at a Postgres the suite may
# create databases on:
#   1. SESAME_TEST_DATABASE_URL if set;
#   2. else the server at 127.0.0.1:5432 (user postgres, trust auth) if it answers;
#   3. else a throwaway cluster made with this machine's initdb/pg_ctl, removed after.
# With none of these, it stops and says how to get one.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

reachable() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

if [ -z "${SESAME_TEST_DATABASE_URL:-}" ]; then
  if reachable 127.0.0.1 5432; then
    export SESAME_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
  else
    bindir=""
    if command -v pg_config >/dev/null 2>&1; then bindir=$(pg_config --bindir); fi
    if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
      bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    fi
    if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
      cat >&2 <<'MSG'
No Postgres for the test suite. Either
  - start one on 127.0.0.1:5432 where user "postgres" may connect without a password, or
  - set SESAME_TEST_DATABASE_URL=postgres://USER:PASS@HOST:PORT/postgres (a user that may
    CREATE DATABASE), or
  - install the server so that initdb is available (Debian: apt-get install postgresql),
    and this script will start a throwaway cluster itself.
MSG
      exit 1
    fi
    dir=$(mktemp -d "${TMPDIR:-/tmp}/sesame-pg.XXXXXX")
    port=$(( 20000 + RANDOM % 20000 ))
    as=()
    if [ "$(id -u)" = 0 ]; then
      # initdb refuses to run as root.
      chown postgres "$dir" 2>/dev/null && as=(runuser -u postgres --) || { echo "cannot run initdb as root without a postgres user" >&2; exit 1; }
    fi
    "${as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
    "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
    trap '"${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1; rm -rf "$dir"' EXIT
    export SESAME_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    echo "using a throwaway Postgres cluster on port $port" >&2
  fi
fi

"$@"
