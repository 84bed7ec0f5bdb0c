#!/usr/bin/env bash
# Memory that any client can pin: 8 HTTP/2 connections each open 1,000 CreateSession streams whose gRPC frame
# header announces a 65,536-byte message, send all of it but the last 10 bytes, and never finish, for 20 s. A normal
# caller makes a real CreateSession call every 200 ms on its own connection meanwhile. The gateway runs --sandbox
# on loopback port 0 (both listeners; the addresses are read from its log); its VmRSS is sampled every 500 ms
# (bench/abuse.rs does the attack, the calls and the sampling).
# Checks: peak RSS < 100 MiB; every normal call succeeded, each within 1 s; the gateway survived.
# Usage: scripts/abuse-memory.sh [--binary target/release/kgen-gateway] [--abuse target/release/examples/abuse]
#                                [--connections 8] [--streams 1000] [--hold 20]
# Without --binary / --abuse, both are built (cargo build --release --locked). Takes about 35 s once built.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
lib_reports_checks=1

binary=""
abuse=""
connections=8
streams=1000
hold=20
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --abuse) abuse=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --streams) streams=$2; shift 2 ;;
    --hold) hold=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
release_binaries
# The attacker and the normal caller need a few dozen descriptors; the gateway keeps the limit it inherits.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# RUST_LOG=warn plus the start-up targets at info, for the lines announcing the addresses.
log_filter=$(announcing_filter warn)
start_bg gateway env RUST_LOG="$log_filter" "$binary" --sandbox --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0
gateway=$started_pid
addr=$(wait_announced gateway 'kgen-gateway serving gRPC' "$gateway")
admin_addr=$(wait_announced gateway 'admin endpoints serving' "$gateway")

echo "== gateway: $binary (pid $gateway), gRPC $addr, admin $admin_addr"
attack_ok=1
# In the background, so that a signal to this script stops it at once (the EXIT trap kills it).
start_bg abuse "$abuse" memory --target "$addr" --pid "$gateway" --connections "$connections" --streams "$streams" \
  --hold "$hold" --after 5 --baseline 2 --interval-ms 200 --call-timeout 5
wait "$started_pid" || attack_ok=0
cat "$work/abuse.log"
figure() { sed -n "s/^FIGURE $1=//p" "$work/abuse.log" | tail -n 1; }

alive=0
kill -0 "$gateway" 2>/dev/null && alive=1
echo "== gateway log: $(grep -c . "$work/gateway.log" || true) lines at RUST_LOG=$log_filter; the first 5 WARN or" \
  "ERROR lines but the sandbox banner:"
grep -E ' (WARN|ERROR) ' "$work/gateway.log" | grep -v 'SANDBOX MODE' | head -n 5 || true

echo "== checks"
check "the attack client ran to completion" [ "$attack_ok" -eq 1 ]
check "the gateway is still running" [ "$alive" -eq 1 ]
check_lt "peak RSS in KiB" "$(figure peak_rss_kib)" $((100 * 1024))
check_eq "normal calls that failed" "$(figure normal_failed)" 0
check_lt "slowest normal call in ms" "$(figure normal_max_ms)" 1000
# At one call every 200 ms for the baseline and the hold, fewer than half of them means the caller stalled.
check "the normal caller made at least $(( (hold + 2) * 5 / 2 )) calls (made $(figure normal_calls))" \
  lt $(( (hold + 2) * 5 / 2 - 1 )) "$(figure normal_calls)"
finish
