#!/usr/bin/env bash
# A unary request body that never ends, sent with curl (HTTP/2 prior knowledge) to a gateway on --sandbox:
#   zeros    zero-length gRPC messages, as fast as the gateway reads them (the second one is a protocol violation)
#   partial  a header announcing 60,000 bytes, then one byte every 5 ms (the message never completes)
# For each: how long until the gateway ended the call, and the CPU the gateway spent (from /proc/PID/stat). Each
# attempt is cut off by the client after 20 s.
# Checks: zeros ends within 2 s; partial ends within --request-body-timeout (5 s) + 2 s; the gateway spends under
# 1 s of CPU on both.
# Usage: scripts/abuse-endless-body.sh [--binary target/release/kgen-gateway]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
lib_reports_checks=1

binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
release_gateway
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }

# Both listeners on port 0 (the admin one is not used here, but its default 127.0.0.1:9090 may be taken); the gRPC
# address is read from the gateway's 'serving gRPC' line (RUST_LOG=warn plus the start-up targets at info).
log_filter=$(announcing_filter warn)
start_bg gateway env RUST_LOG="$log_filter" "$binary" --sandbox --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0
gateway=$started_pid
addr=$(wait_announced gateway 'kgen-gateway serving gRPC' "$gateway")

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_per_second=$(getconf CLK_TCK)

# Writes the body of MODE to stdout until the reader goes away.
body() {
  python3 - "$1" <<'PY'
import sys, time
out = sys.stdout.buffer
try:
    if sys.argv[1] == "zeros":
        chunk = b"\x00\x00\x00\x00\x00" * 2000
        while True:
            out.write(chunk)
            out.flush()
    else:
        out.write(b"\x00\x00\x00\xea\x60")  # announces 60,000 bytes
        out.flush()
        while True:
            time.sleep(0.005)
            out.write(b"x")
            out.flush()
except BrokenPipeError:
    pass
PY
}

# Sends the endless body of MODE; prints the milliseconds until the call ended and the gateway's CPU milliseconds.
attempt() {
  local mode=$1 before after started ended
  before=$(cpu_ticks "$gateway")
  started=$(date +%s%N)
  body "$mode" | timeout 20 curl -s -o /dev/null --http2-prior-knowledge -X POST -T - \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://$addr/kgen.session.v1.SessionService/CreateSession" || true
  ended=$(date +%s%N)
  after=$(cpu_ticks "$gateway")
  echo "$(((ended - started) / 1000000)) $(((after - before) * 1000 / ticks_per_second))"
}

echo "== gateway: $binary (pid $gateway), gRPC $addr"
read -r zeros_ms zeros_cpu < <(attempt zeros)
echo "zeros: the call ended after ${zeros_ms} ms; gateway CPU ${zeros_cpu} ms"
read -r partial_ms partial_cpu < <(attempt partial)
echo "partial: the call ended after ${partial_ms} ms; gateway CPU ${partial_cpu} ms"

echo "== checks"
check "the gateway is still running" kill -0 "$gateway"
check_lt "zeros: milliseconds until the call ended" "$zeros_ms" 2000
check_lt "partial: milliseconds until the call ended" "$partial_ms" 7000
check_lt "zeros: gateway CPU milliseconds" "$zeros_cpu" 1000
check_lt "partial: gateway CPU milliseconds" "$partial_cpu" 1000
finish
