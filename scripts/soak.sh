#!/usr/bin/env bash
# Soak test: runs `kgen-gateway --sandbox` on loopback port 0 and drives it for a fixed time with a mix of
# healthy CreateSession calls and calls whose magic user ids make the embedded fake KGeN fail (docs/sandbox.md).
# Reports the gateway's RSS at start (serving, before load), every few seconds during, and at the end (after load
# stops), the peak, and h2load's request counts and throughput per kind of call.
#
#   scripts/soak.sh [--duration 300] [--concurrency 32] [--binary target/release/kgen-gateway]
#                   [--sample-interval 5] [-- EXTRA GATEWAY FLAGS…]
#
# --concurrency is the number of HTTP/2 connections in all (one call in flight on each); most go to the healthy
# calls, each fault kind gets concurrency/16 (at least 1). Missing tools are installed: h2load from Debian's
# nghttp2-client; without --binary, target/release/kgen-gateway is built (or refreshed) with
# `cargo build --release --locked --bin kgen-gateway` from the repo root (honours CARGO_TARGET_DIR).
# SOAK_RUST_LOG sets the gateway's RUST_LOG (default `info`; the serving addresses are read from its `info` lines, so
# its start-up targets at info are added to a filter that would hide them: announcing_filter in scripts/lib.sh). The
# admin listener is on port 0 too (KGEN_ADMIN_LISTEN=127.0.0.1:0 unless set; a --admin-listen flag after `--` wins).
#
# h2load counts HTTP statuses only: a gRPC error is still an HTTP 200, so every call shows as 2xx. What each kind
# should get is known from the user id it sends (column "expected"). What it really got is counted from the
# gateway's log: every failed call logs `call failed` with its `reason` and the call's `user_id`; the rest were OK.
# (The gateway's circuit breaker is shared by all calls, so a run of 5xx faults can also fail healthy calls fast with
# UPSTREAM_CIRCUIT_OPEN; pass e.g. `-- --breaker-failure-threshold 1000000` to keep it out of the picture.) One call
# per kind is also checked with curl before and after the load, printing the grpc-status it really got.
# The JSON log goes to a temporary file (deleted on success): roughly 300 bytes per failed call.
#
# Exit status: 0 when the gateway served throughout and stopped cleanly on SIGTERM; 1 if it failed to start, died
# during the run, did not exit 0 on SIGTERM (within 30 s), or an h2load run failed (or was still running a minute
# after --duration); 2 for bad usage.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
lib_keep_work_on_failure=1

duration=300
concurrency=32
binary=""
sample_interval=5
extra_flags=()

usage() {
  echo "usage: scripts/soak.sh [--duration 300] [--concurrency 32] [--binary target/release/kgen-gateway]" \
    "[--sample-interval 5] [-- EXTRA GATEWAY FLAGS...]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=${2:?}; shift 2 ;;
    --concurrency) concurrency=${2:?}; shift 2 ;;
    --binary) binary=${2:?}; shift 2 ;;
    --sample-interval) sample_interval=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    --) shift; extra_flags=("$@"); break ;;
    *) echo "soak: unknown argument: $1" >&2; usage ;;
  esac
done
for n in "$duration" "$concurrency" "$sample_interval"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "soak: not a positive integer: $n" >&2; exit 2; }
done

# The kinds of call: name, user_id, what the gateway answers (the tables of docs/sandbox.md and docs/errors.md).
kinds=(healthy-a healthy-b status-503 status-429 malformed oversized delay-200 status-500)
declare -A user_id=(
  [healthy-a]=soak-user-a [healthy-b]=soak-user-b
  [status-503]=fault:status:503 [status-429]=fault:status:429
  [malformed]=fault:malformed [oversized]=fault:oversized
  [delay-200]=fault:delay:200 [status-500]=fault:status:500
)
declare -A expected=(
  [healthy-a]="OK" [healthy-b]="OK"
  [status-503]="UNAVAILABLE/UPSTREAM_UNAVAILABLE" [status-429]="RESOURCE_EXHAUSTED/UPSTREAM_RATE_LIMITED"
  [malformed]="INTERNAL/UPSTREAM_BAD_RESPONSE" [oversized]="INTERNAL/UPSTREAM_RESPONSE_TOO_LARGE"
  [delay-200]="OK (after 200 ms)" [status-500]="INTERNAL/UPSTREAM_INTERNAL_ERROR"
)
n_faults=$((${#kinds[@]} - 2))
fault_clients=$((concurrency / 16 > 0 ? concurrency / 16 : 1))
healthy_clients=$((concurrency - n_faults * fault_clients))
if [ "$healthy_clients" -lt 2 ]; then
  echo "soak: --concurrency must be at least $((n_faults + 2)) (one connection per kind of call)" >&2
  exit 2
fi
declare -A clients
for kind in "${kinds[@]}"; do clients[$kind]=$fault_clients; done
clients[healthy-a]=$(((healthy_clients + 1) / 2))
clients[healthy-b]=$((healthy_clients / 2))

# --- tools -------------------------------------------------------------------------------------------------------
if ! command -v h2load > /dev/null; then
  echo "== installing h2load (Debian nghttp2-client)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client > /dev/null
fi
if [ -z "$binary" ]; then
  # The default binary is always brought up to date (a no-op when it is), so a stale build is never soaked.
  echo "== cargo build --release --locked --bin kgen-gateway"
  release_gateway
  [ -x "$binary" ] || { echo "soak: built, but $binary still missing" >&2; exit 1; }
fi

# --- processes ---------------------------------------------------------------------------------------------------
# scripts/lib.sh stops every process started with start_bg on exit, and keeps $work (the logs) on failure.
gateway_pid=""
load_pids=()
alive() { kill -0 "$gateway_pid" 2> /dev/null; }
died() {
  echo "soak: FAIL: the gateway (pid $gateway_pid) died $1" >&2
  local rc=0
  wait_bg "$gateway_pid" 5 || rc=$?
  echo "soak: its exit status: $rc; last log lines:" >&2
  tail -n 20 "$work/gateway.log" >&2 || true
  exit 1
}

# --- the gateway -------------------------------------------------------------------------------------------------
echo "== starting $binary --sandbox --listen 127.0.0.1:0 --log-format json ${extra_flags[*]}"
start_bg gateway env RUST_LOG="$(announcing_filter "${SOAK_RUST_LOG:-info}")" \
  KGEN_ADMIN_LISTEN="${KGEN_ADMIN_LISTEN:-127.0.0.1:0}" "$binary" --sandbox \
  --listen 127.0.0.1:0 --log-format json "${extra_flags[@]}"
gateway_pid=$started_pid
addr=$(wait_announced gateway 'kgen-gateway serving gRPC' "$gateway_pid" 30)
admin_addr=$(wait_announced gateway 'admin endpoints serving' "$gateway_pid")
url="http://$addr/kgen.session.v1.SessionService/CreateSession"
echo "   pid $gateway_pid serving gRPC on $addr, admin on $admin_addr"

# One gRPC frame per kind: 0x00, 4-byte big-endian length, CreateSessionRequest{ 1: user_id } (ids < 126 bytes).
for kind in "${kinds[@]}"; do
  id=${user_id[$kind]}
  n=$(printf '%s' "$id" | wc -c)
  printf '%b' "\\x00\\x00\\x00\\x00\\x$(printf %02x $((n + 2)))\\x0a\\x$(printf %02x "$n")" > "$work/$kind.bin"
  printf '%s' "$id" >> "$work/$kind.bin"
done

# One call per kind with curl (which prints the trailers), to show the gRPC outcomes are what the table says.
spot_check() {
  command -v curl > /dev/null || { echo "   (curl missing: spot check skipped)"; return 0; }
  local kind headers status message
  for kind in "${kinds[@]}"; do
    headers=$(curl -s --http2-prior-knowledge --max-time 10 -o /dev/null -D - --data-binary "@$work/$kind.bin" \
      -H 'content-type: application/grpc' -H 'te: trailers' "$url" | tr -d '\r' || true)
    status=$(printf '%s\n' "$headers" | sed -n 's/^grpc-status: *//Ip' | tail -n1)
    message=$(printf '%s\n' "$headers" | sed -n 's/^grpc-message: *//Ip' | tail -n1)
    message=$(printf '%b' "${message//%/\\x}") # grpc-message is percent-encoded
    printf '   %-11s %-17s grpc-status %-3s %s\n' "$kind" "${user_id[$kind]}" "${status:-?}" "${message:0:90}"
  done
}
echo "== spot check before load (one call per kind; grpc-status 0 = OK)"
spot_check
alive || died "during the spot check"

# --- load --------------------------------------------------------------------------------------------------------
rss_start=$(proc_kib "$gateway_pid" VmRSS)
fds_start=$(fd_count "$gateway_pid")
rss_max=$rss_start
samples=1
echo "== load: ${duration}s, $concurrency connections (healthy ${clients[healthy-a]}+${clients[healthy-b]}," \
  "each fault kind $fault_clients), RSS sampled every ${sample_interval}s"
echo "   [   0s] VmRSS ${rss_start} KiB, ${fds_start} fds"
start=$(date +%s)
for kind in "${kinds[@]}"; do
  start_bg "$kind.h2load" h2load -D "$duration" -c "${clients[$kind]}" -m 1 -d "$work/$kind.bin" \
    -H 'content-type: application/grpc' -H 'te: trailers' "$url"
  load_pids+=("$started_pid")
done

running() {
  local pid
  for pid in "${load_pids[@]}"; do kill -0 "$pid" 2> /dev/null && return 0; done
  return 1
}
next_sample=$((start + sample_interval))
# h2load stops by itself after -D seconds; one still running a minute later is stopped (and the run fails).
load_deadline=$((start + duration + 60))
while running && [ "$(date +%s)" -lt "$load_deadline" ]; do
  sleep 1
  alive || died "during the load, $(($(date +%s) - start))s in"
  now=$(date +%s)
  if [ "$now" -ge "$next_sample" ]; then
    rss=$(proc_kib "$gateway_pid" VmRSS)
    if [ -n "$rss" ]; then
      samples=$((samples + 1))
      [ "$rss" -gt "$rss_max" ] && rss_max=$rss
      printf '   [%4ds] VmRSS %s KiB, %s fds\n' "$((now - start))" "$rss" "$(fd_count "$gateway_pid")"
    fi
    next_sample=$((next_sample + sample_interval))
  fi
done
load_failed=0
for i in "${!load_pids[@]}"; do
  rc=0
  wait_bg "${load_pids[$i]}" 5 || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "soak: h2load for ${kinds[$i]} exited $rc:" >&2
    tail -n 5 "$work/${kinds[$i]}.h2load.log" >&2
    load_failed=1
  fi
done
load_pids=()
elapsed=$(($(date +%s) - start))
alive || died "as the load ended"
sleep 1 # let calls still draining upstream finish before the end sample
rss_end=$(proc_kib "$gateway_pid" VmRSS)
hwm=$(proc_kib "$gateway_pid" VmHWM)
fds_end=$(fd_count "$gateway_pid")
samples=$((samples + 1))
[ "$rss_end" -gt "$rss_max" ] && rss_max=$rss_end
echo "   [end  ] VmRSS ${rss_end} KiB, ${fds_end} fds"

echo "== spot check after load"
spot_check
alive || died "during the final spot check"

# --- stop --------------------------------------------------------------------------------------------------------
stop_rc=0
stop_bg "$gateway_pid" 30 || stop_rc=$?
gateway_pid=""

# --- summary -----------------------------------------------------------------------------------------------------
field() { sed -n "$1" "$2"; }
echo
echo "==================== soak summary ===================="
printf 'duration          %ss of load (h2load -D %s per kind), %ss wall\n' "$duration" "$duration" "$elapsed"
printf 'connections       %s (1 call in flight each)\n' "$concurrency"
printf '%-11s %-17s %4s %9s %9s %7s %9s %10s  %s\n' kind user_id conn requests succeeded failed 2xx req/s expected
total=0
total_rps=0
for kind in "${kinds[@]}"; do
  out="$work/$kind.h2load.log"
  req=$(field 's/^requests: \([0-9]*\) total.*/\1/p' "$out")
  ok=$(field 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' "$out")
  bad=$(field 's/^requests: .* \([0-9]*\) failed.*/\1/p' "$out")
  s2xx=$(field 's/^status codes: \([0-9]*\) 2xx.*/\1/p' "$out")
  rps=$(field 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$out")
  printf '%-11s %-17s %4s %9s %9s %7s %9s %10s  %s\n' "$kind" "${user_id[$kind]}" "${clients[$kind]}" \
    "${req:-?}" "${ok:-?}" "${bad:-?}" "${s2xx:-?}" "${rps:-?}" "${expected[$kind]}"
  total=$((total + ${ok:-0}))
  total_rps=$(awk -v a="$total_rps" -v b="${rps:-0}" 'BEGIN { printf "%.2f", a + b }')
done
printf 'total             %s calls completed (HTTP 2xx), %s req/s\n' "$total" "$total_rps"
echo "gRPC outcomes (failures from the gateway's 'call failed' log lines by user_id and reason; the rest OK):"
# "<user_id> <reason>" for every failed call, counted.
sed -n '/"message":"call failed/ s/.*"reason":"\([^"]*\)".*"user_id":"\([^"]*\)".*/\2 \1/p' "$work/gateway.log" \
  | sort | uniq -c > "$work/failures"
for kind in "${kinds[@]}"; do
  calls=$(sed -n 's/^requests: \([0-9]*\) total.*/\1/p' "$work/$kind.h2load.log")
  calls=${calls:-0}
  failed=0
  detail=""
  while read -r count id reason; do
    [ "$id" = "${user_id[$kind]}" ] || continue
    failed=$((failed + count))
    detail+=", $count $reason"
  done < "$work/failures"
  ok=$((calls > failed ? calls - failed : 0))
  printf '  %-11s %9s OK%s\n' "$kind" "$ok" "$detail"
done
printf 'RSS (VmRSS)       start %s KiB, max %s KiB, end %s KiB (%s samples); kernel peak VmHWM %s KiB\n' \
  "$rss_start" "$rss_max" "$rss_end" "$samples" "$hwm"
printf 'open fds          start %s, end %s\n' "$fds_start" "$fds_end"
printf 'gateway log       %s lines, %s KiB; by level and message:\n' "$(wc -l < "$work/gateway.log")" \
  "$(($(stat -c %s "$work/gateway.log") / 1024))"
sed -n 's/.*"level":"\([A-Z]*\)","message":"\([^"]*\)".*/\1 \2/p' "$work/gateway.log" | sort | uniq -c \
  | sort -rn | head -n 12 | sed 's/^ */  /'
printf 'gateway           served throughout; exit status %s after SIGTERM\n' "$stop_rc"
echo "======================================================"

if [ "$stop_rc" -ne 0 ]; then
  echo "soak: FAIL: the gateway exited $stop_rc on SIGTERM" >&2
  exit 1
fi
if [ "$load_failed" -ne 0 ]; then
  echo "soak: FAIL: an h2load run failed" >&2
  exit 1
fi
