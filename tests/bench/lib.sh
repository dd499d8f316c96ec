# shellcheck shell=bash
# Helpers for tests/bench/run.sh and measure.sh (and tests/soak/). Sourced, not executed.
# LOG_TAG (default "bench") names the caller in log and error lines.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/../.." && pwd)"
RESULTS="$BENCH_DIR/results"
RAW="$RESULTS/raw"
BENCH_T0="${BENCH_T0:-$(date +%s)}"
export BENCH_DIR ROOT RESULTS RAW BENCH_T0

log() { printf '[%s %4ss] %s\n' "${LOG_TAG:-bench}" "$(($(date +%s) - BENCH_T0))" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "${LOG_TAG:-bench}" "$*" >&2; exit 1; }

# Installs Debian packages (apt-get, as root or with passwordless sudo); nothing if none
# are named.
apt_install() {
  (($#)) || return 0
  log "installing $* (apt-get)"
  local as=()
  if [[ "$(id -u)" != 0 ]]; then
    sudo -n true 2>/dev/null || die "need $*: run as root, or install them (apt-get install $*)"
    as=(sudo -n)
  fi
  command -v apt-get >/dev/null || die "need $* and there is no apt-get here; install them"
  "${as[@]}" apt-get update -qq >&2
  "${as[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# The sesame binary that `cargo build --release` makes (honours CARGO_TARGET_DIR and any
# configured target-dir).
sesame_bin() {
  local dir
  dir="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')" \
    || dir="${CARGO_TARGET_DIR:-$ROOT/target}"
  printf '%s/release/sesame\n' "$dir"
}

# A TCP port nothing listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Polls URL until it answers 2xx, at most $2 seconds.
wait_http() {
  local url="$1" limit="${2:-60}" i
  for ((i = 0; i < limit * 10; i++)); do
    curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# /proc/PID/status fields in KiB: VmRSS (now) and VmHWM (peak).
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/{print $2}' "/proc/$1/status"; }

# Starts wrk in the background with tests/bench/bench.lua (configured by the BENCH_*
# environment) and sets WRK_PID. wrk stops itself after SECS; `timeout` is the backstop
# and passes a TERM on to wrk. Output goes to $RAW/TAG.wrk.log.
#   start_wrk TAG THREADS CONNS SECS URL [wrk args...]
start_wrk() {
  local tag="$1" threads="$2" conns="$3" secs="$4" url="$5"
  shift 5
  timeout --kill-after=5 $((secs + 30)) \
    wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 10s --latency \
    -s "$BENCH_DIR/bench.lua" "$@" "$url" >"$RAW/$tag.wrk.log" 2>&1 &
  WRK_PID=$!
}

# Waits for a wrk started by start_wrk and prints its result fields
# ("requests=… rps=… p50_ms=… p99_ms=… non2xx=… sockerr=…").
#   wrk_result TAG PID
wrk_result() {
  local tag="$1" pid="$2" line
  wait "$pid" || true
  line="$(grep '^BENCH ' "$RAW/$tag.wrk.log" | tail -1)"
  [[ -n "$line" ]] || { cat "$RAW/$tag.wrk.log" >&2; die "wrk gave no result for $tag"; }
  printf '%s\n' "${line#BENCH }"
}

# start_wrk and wrk_result in one: run_wrk TAG THREADS CONNS SECS URL [wrk args...]
run_wrk() {
  start_wrk "$@"
  wrk_result "$1" "$WRK_PID"
}

# One field of a "k=v k=v" line: field LINE KEY
field() { sed -nE "s/(^| )$2=([^ ]*).*/\\2/p" <<<"$1"; }

# Bytes a process has read through read(2) and the like (page cache or disk): read_bytes PID
read_bytes() { awk '$1=="rchar:"{print $2}' "/proc/$1/io"; }
