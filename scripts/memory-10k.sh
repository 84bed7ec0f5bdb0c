#!/usr/bin/env bash
# Measures the gateway's memory with 10,000 slow calls in flight: the upstream (the standalone sandbox, in its
# own process) holds every call for --hold-ms; h2load keeps 10,000 streams open on 10 connections.
# Usage: scripts/memory-10k.sh [--binary target/release/kgen-gateway] [--calls 10000] [--hold-ms 15000]
#                              [--upstream-h2c]   (gateway → sandbox over HTTP/2 prior knowledge instead of HTTP/1.1)
#                              [--dhat FILE]      (the gateway under `valgrind --tool=dhat`, its heap profile written to
#                                                  FILE at exit: `bench/alloc-profile.py --peak FILE --calls N` says
#                                                  who holds the memory at the peak; RSS figures are valgrind's then)
# The last line is the figures as KEY=VALUE fields (read by scripts/bench-report.sh; keys are only ever added):
#   FIGURE scenario=memory calls=N upstream=http1|h2c hold_ms=N rss_idle_kib=N rss_peak_kib=N rss_after_kib=N
#          fds_peak=N grpc_ok=N   (grpc_ok: the calls the gateway's metrics count as answered OK)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
binary=""
calls=10000
hold_ms=15000
upstream_flags=()
wrapper=()
upstream_protocol=http1
while [ $# -gt 0 ]; do
  case "$1" in
    --upstream-h2c) upstream_flags+=(--upstream-http2-prior-knowledge); upstream_protocol=h2c; shift ;;
    --binary) binary=$2; shift 2 ;;
    --calls) calls=$2; shift 2 ;;
    --hold-ms) hold_ms=$2; shift 2 ;;
    --dhat) wrapper=(valgrind --tool=dhat "--dhat-out-file=$(realpath -m "$2")"); shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
if [ -z "$binary" ]; then
  release_build --bin kgen-gateway
  binary="$target_dir/release/kgen-gateway"
fi
command -v h2load >/dev/null || { apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Every listener on port 0; the addresses are read from the logs (the sandbox's is WARN, the gateway's INFO:
# RUST_LOG=warn plus the start-up targets at info).
start_bg sandbox env RUST_LOG=warn "$binary" sandbox --listen 127.0.0.1:0
upstream_addr=$(wait_announced sandbox 'fake KGeN upstream (sandbox) listening' "$started_pid")
start_bg gateway env KGEN_CLIENT_SECRET=sandbox-secret RUST_LOG="$(announcing_filter warn)" ${wrapper[@]+"${wrapper[@]}"} "$binary" \
  --listen 127.0.0.1:0 --upstream-url "http://$upstream_addr" --client-id sandbox-client \
  --admin-listen 127.0.0.1:0 --max-concurrent-upstream "$calls" --max-concurrent-streams $((calls / 10)) --max-concurrent-calls "$calls" \
  --request-body-timeout 120s --upstream-timeout 120s "${upstream_flags[@]}"
gateway=$started_pid
gateway_addr=$(wait_announced gateway 'kgen-gateway serving gRPC' "$gateway")
admin_addr=$(wait_announced gateway 'admin endpoints serving' "$gateway")

user_id="fault:delay:$hold_ms"
python3 - "$user_id" "$work/request.bin" <<'PY'
import struct, sys
user = sys.argv[1].encode()
message = b"\x0a" + bytes([len(user)]) + user
open(sys.argv[2], "wb").write(b"\x00" + struct.pack(">I", len(message)) + message)
PY

idle=$(rss_kib "$gateway")
h2load -n "$calls" -c 10 -m $((calls / 10)) -t 1 --data="$work/request.bin" \
  -H 'content-type: application/grpc' -H 'te: trailers' \
  "http://$gateway_addr/kgen.session.v1.SessionService/CreateSession" >"$work/h2load.log" 2>&1 &
load=$!
lib_pids+=("$load")
peak=$idle
in_flight_seen=0
for _ in $(seq $((hold_ms / 500))); do
  sleep 0.5
  rss=$(rss_kib "$gateway")
  [ "$rss" -gt "$peak" ] && peak=$rss
  conns=$(fd_count "$gateway")
  [ "$conns" -gt "$in_flight_seen" ] && in_flight_seen=$conns
done
wait "$load" || true
after=$(rss_kib "$gateway")
echo "== h2load"
grep -E 'finished in|requests:|status codes' "$work/h2load.log"
echo "== gateway memory with $calls calls held ${hold_ms} ms upstream"
echo "RSS idle:        ${idle} KiB"
echo "RSS peak:        ${peak} KiB"
echo "RSS after:       ${after} KiB"
echo "open fds (peak): ${in_flight_seen} (upstream connections + client connections)"
echo "peak - idle per call: $(( (peak - idle) * 1024 / calls )) bytes"
# h2load counts HTTP statuses only; the gateway's own metrics say how the calls ended.
echo "== gRPC outcomes (gateway metrics)"
outcomes=$(python3 - "$admin_addr" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=5).read().decode()
for line in text.splitlines():
    if line.startswith("grpc_server_handled_total") and 'grpc_method="CreateSession"' in line:
        print(line)
PY
)
printf '%s\n' "$outcomes"
kill -0 "$gateway" || { echo "gateway died" >&2; exit 1; }
grpc_ok=$(awk '/grpc_code="OK"/ { sum += $NF } END { printf "%d\n", sum }' <<<"$outcomes")
echo "FIGURE scenario=memory calls=$calls upstream=$upstream_protocol hold_ms=$hold_ms rss_idle_kib=$idle" \
  "rss_peak_kib=$peak rss_after_kib=$after fds_peak=$in_flight_seen grpc_ok=$grpc_ok"
