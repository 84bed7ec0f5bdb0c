# shellcheck shell=bash
# Shell helpers shared by scripts/*.sh, sourced after `set -euo pipefail`:
#   work              a scratch directory ($TMPDIR/kgen-SCRIPT.XXXXXX), removed on exit; logs of processes started
#                     with start_bg go there. A script that sets lib_keep_work_on_failure=1 keeps it (when not empty)
#                     if it exits non-zero, and says so on stderr.
#   at_exit           if the script defines this function, it is called on exit with the exit status, before the
#                     processes are stopped
#   start_bg NAME CMD ARGS...   starts CMD in the background (output in $work/NAME.log); its pid in $started_pid,
#                     and it is stopped on exit (TERM, then KILL after 5 s)
#   wait_announced NAME PATTERN PID [SECONDS]   waits (default 10 s) for a line containing PATTERN (a fixed string)
#                     in $work/NAME.log and prints that line's addr field (text `addr=HOST:PORT` or JSON
#                     `"addr":"HOST:PORT"`): the address a process started on port 0 announces, e.g.
#                     addr=$(wait_announced gateway 'kgen-gateway serving gRPC' "$pid"). Exits with the log if PID
#                     dies or the time is up. Every server the scripts start announces itself this way; there is no
#                     picking of free ports. kgen-gateway's lines: 'kgen-gateway serving gRPC' and 'admin endpoints
#                     serving' (INFO; the admin line comes first), `kgen-gateway sandbox`'s 'fake KGeN upstream
#                     (sandbox) listening' (WARN); the echo_floor example's 'echo_floor listening'; the comparison
#                     bridges' 'bridge.py: serving' and 'bridge.js: serving'.
#   announcing_filter FILTER   FILTER (a RUST_LOG value) with kgen_gateway::app=info (the composition root and
#                     its admin listener) added, unless FILTER is a bare info, debug or trace, already names that target, or sets all of
#                     kgen_gateway to info or more; so that 'kgen-gateway serving gRPC' and 'admin endpoints
#                     serving' are logged (a few start-up and shutdown lines more, none per call)
#   wait_bg PID [SECONDS]   waits (default 10 s) for the background process PID to exit and returns its exit
#                     status; if the time is up, stops it (TERM, then KILL after 5 s) and returns 124
#   stop_bg PID [SECONDS]   sends TERM to PID, then wait_bg PID SECONDS (default 15 s)
#   rss_kib PID, fd_count PID       VmRSS in KiB, open file descriptors
#   proc_kib PID FIELD              a field of /proc/PID/status in KiB (VmRSS, VmHWM...); nothing if PID is gone
#   release_build ARGS...           cargo build --release --locked --quiet ARGS in the repository
#   release_gateway, release_binaries   when $binary (and, for the second, $abuse) is empty, builds the release
#                     gateway (and the abuse example) and points it there
#   check NAME CMD ARGS...          a check: passes if CMD succeeds; check_lt NAME VALUE LIMIT, check_eq NAME VALUE
#                     EXPECTED for whole numbers (a missing or non-numeric VALUE fails); $checks_passed and
#                     $checks_failed count them (a script that reports checks its own way may add to them)
#   finish            prints the last line, "N passed, N failed", and returns non-zero if any check failed. In a
#                     script that set lib_reports_checks=1, exiting before finish (an error under set -e, a signal)
#                     counts as one more failed check, so that last line is always there.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC2034 # used by the scripts that source this file
target_dir=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d "${TMPDIR:-/tmp}/kgen-$(basename "$0" .sh).XXXXXX")
lib_pids=()
checks_passed=0
checks_failed=0
lib_finished=0
lib_reports_checks=0
lib_keep_work_on_failure=0

lib_cleanup() {
  local status=$?
  local pid
  # A child forked by start_bg that is signalled before it has exec'd its command runs this trap too: not there.
  [ "$BASHPID" = "$$" ] || exit "$status"
  if declare -F at_exit >/dev/null; then at_exit "$status" || true; fi
  for pid in "${lib_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${lib_pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.1
  done
  for pid in "${lib_pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$lib_keep_work_on_failure" -eq 1 ] && [ "$status" -ne 0 ] && [ -n "$(ls -A "$work" 2>/dev/null)" ]; then
    echo "$(basename "$0" .sh): logs kept in $work" >&2
  else
    rm -rf "$work"
  fi
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

started_pid=""
start_bg() {
  local name=$1
  shift
  "$@" >"$work/$name.log" 2>&1 &
  started_pid=$!
  lib_pids+=("$started_pid")
}

wait_announced() {
  local name=$1 pattern=$2 pid=$3 seconds=${4:-10}
  local log="$work/$name.log" line addr _
  for _ in $(seq $((seconds * 10))); do
    line=$(grep -F -m 1 -e "$pattern" "$log" 2>/dev/null || true)
    if [ -n "$line" ]; then
      addr=$(sed -n -e 's/.*"addr":"\([^"]*\)".*/\1/p' -e 't' -e 's/.* addr=\([^ ]*\).*/\1/p' <<<"$line")
      [ -n "$addr" ] || { echo "$name logged '$pattern' without an addr field: $line" >&2; exit 1; }
      printf '%s\n' "$addr"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$name (pid $pid) did not log '$pattern' within ${seconds}s; last lines of $log:" >&2
  else
    echo "$name (pid $pid) exited before logging '$pattern'; last lines of $log:" >&2
  fi
  tail -n 50 "$log" >&2 2>/dev/null || true
  exit 1
}

announcing_filter() {
  local filter=$1 target
  case ",${filter,,}," in
    ,info, | ,debug, | ,trace, | *,kgen_gateway=info,* | *,kgen_gateway=debug,* | *,kgen_gateway=trace,*)
      printf '%s\n' "$filter"
      return 0
      ;;
  esac
  for target in kgen_gateway::app; do
    case "${filter,,}" in
      *"$target"=* | *"$target",* | *"$target") ;;
      *) filter="${filter:+$filter,}$target=info" ;;
    esac
  done
  printf '%s\n' "$filter"
}

lib_forget() {
  local keep=() pid
  for pid in "${lib_pids[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done
  lib_pids=("${keep[@]}")
}
wait_bg() {
  local pid=$1 seconds=${2:-10} status=0 _
  for _ in $(seq $((seconds * 10))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "process $pid still running after ${seconds}s: stopping it" >&2
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    status=124
  else
    wait "$pid" 2>/dev/null || status=$?
  fi
  lib_forget "$pid"
  return "$status"
}
stop_bg() {
  kill -TERM "$1" 2>/dev/null || true
  wait_bg "$1" "${2:-15}"
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
proc_kib() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
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
