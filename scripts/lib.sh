# shellcheck shell=bash
# Shell helpers shared by scripts/*.sh, sourced after `set -euo pipefail`:
#   work              a scratch directory, removed on exit; logs of processes started with start_bg go there
#   free_port         a free TCP port on 127.0.0.1
#   start_bg NAME CMD ARGS...   starts CMD in the background (output in $work/NAME.log); its pid in $started_pid,
#                     and it is stopped on exit (TERM, then KILL after 5 s)
#   wait_port PORT PID [SECONDS]   waits (default 10 s) until 127.0.0.1:PORT accepts a connection; exits with the
#                     logs if PID dies or the time is up
#   rss_kib PID, fd_count PID       VmRSS in KiB, open file descriptors
#   release_build ARGS...           cargo build --release --locked --quiet ARGS in the repository
#   release_gateway, release_binaries   when $binary (and, for the second, $abuse) is empty, builds the release
#                     gateway (and the abuse example) and points it there
#   check NAME CMD ARGS...          a check: passes if CMD succeeds; check_lt NAME VALUE LIMIT, check_eq NAME VALUE
#                     EXPECTED for whole numbers (a missing or non-numeric VALUE fails)
#   finish            prints the last line, "N passed, N failed", and returns non-zero if any check failed. In a
#                     script that set lib_reports_checks=1, exiting before finish (an error under set -e, a signal)
#                     counts as one more failed check, so that last line is always there.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC2034 # used by the scripts that source this file
target_dir=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d)
lib_pids=()
checks_passed=0
checks_failed=0
lib_finished=0
lib_reports_checks=0

lib_cleanup() {
  local status=$?
  local pid
  for pid in "${lib_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${lib_pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.1
  done
  for pid in "${lib_pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
  if [ "$lib_reports_checks" -eq 1 ] && [ "$lib_finished" -eq 0 ]; then
    echo "FAIL: the script stopped early (exit status $status)"
    echo "$checks_passed passed, $((checks_failed + 1)) failed"
    [ "$status" -ne 0 ] || status=1
  fi
  exit "$status"
}
trap lib_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

started_pid=""
start_bg() {
  local name=$1
  shift
  "$@" >"$work/$name.log" 2>&1 &
  started_pid=$!
  lib_pids+=("$started_pid")
}

wait_port() {
  local port=$1 pid=$2 seconds=${3:-10}
  local _
  for _ in $(seq $((seconds * 10))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { echo "process $pid exited:" >&2; tail -n 50 "$work"/*.log >&2; exit 1; }
    sleep 0.1
  done
  echo "port $port never opened within ${seconds}s:" >&2
  tail -n 50 "$work"/*.log >&2
  exit 1
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

release_build() { (cd "$root" && cargo build --release --locked --quiet "$@"); }
release_gateway() {
  if [ -z "${binary:-}" ]; then
    release_build --bin kgen-gateway
    binary="$target_dir/release/kgen-gateway"
  fi
}
release_binaries() {
  release_gateway
  if [ -z "${abuse:-}" ]; then
    release_build --example abuse
    abuse="$target_dir/release/examples/abuse"
  fi
}

check() {
  local name=$1
  shift
  if "$@"; then
    echo "PASS: $name"
    checks_passed=$((checks_passed + 1))
  else
    echo "FAIL: $name"
    checks_failed=$((checks_failed + 1))
  fi
}
is_number() { [[ "$1" =~ ^[0-9]+$ ]]; }
lt() { is_number "$1" && is_number "$2" && [ "$1" -lt "$2" ]; }
eq() { is_number "$1" && is_number "$2" && [ "$1" -eq "$2" ]; }
check_lt() { check "$1 (got ${2:-nothing}, limit < $3)" lt "$2" "$3"; }
check_eq() { check "$1 (got ${2:-nothing}, expected $3)" eq "$2" "$3"; }

finish() {
  lib_finished=1
  echo "$checks_passed passed, $checks_failed failed"
  [ "$checks_failed" -eq 0 ]
}
