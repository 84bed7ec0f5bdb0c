#!/usr/bin/env bash
# File descriptors that any client can exhaust: the gateway runs --sandbox under `ulimit -n 1024` (soft and hard);
# a client with a higher limit opens 1,100 idle TCP connections (connected, nothing sent) to the gRPC port and
# 1,100 to the admin port and holds them 20 s after the last connect. Meanwhile, every 2 s: a CreateSession call on
# a fresh connection, one on a connection made before the flood, and GET /healthz on a fresh connection, each
# bounded by 2 s. The gateway's open descriptors are counted every 500 ms, and every idle connection it closes is
# timed (bench/abuse.rs does the flood, the probes and the counting).
# Checks: every probe answered, within 2 s; the gateway survived.
# Usage: scripts/abuse-fds.sh [--binary target/release/kgen-gateway] [--abuse target/release/examples/abuse]
#                             [--count 1100] [--hold 20] [--nofile 1024]
# Without --binary / --abuse, both are built (cargo build --release --locked). Takes about 35 s once built.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
lib_reports_checks=1

binary=""
abuse=""
count=1100
hold=20
nofile=1024
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --abuse) abuse=$2; shift 2 ;;
    --count) count=$2; shift 2 ;;
    --hold) hold=$2; shift 2 ;;
    --nofile) nofile=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
release_binaries
# The client holds 2 × count connections, plus its probes.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
need=$((2 * count + 200))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
  echo "this shell may open only $(ulimit -n) files; the client needs $need (raise the hard limit)" >&2
  exit 1
fi

# Both listeners on port 0; the addresses are read from the gateway's log (RUST_LOG=warn plus the start-up targets at
# info, for the lines announcing them).
log_filter=$(announcing_filter warn)
# `ulimit -n` sets the soft and the hard limit: the gateway cannot raise it again. exec keeps the pid.
# shellcheck disable=SC2016 # expanded by the inner bash
start_bg gateway env RUST_LOG="$log_filter" bash -c 'ulimit -n "$0" && exec "$@"' "$nofile" \
  "$binary" --sandbox --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0
gateway=$started_pid
addr=$(wait_announced gateway 'kgen-gateway serving gRPC' "$gateway")
admin_addr=$(wait_announced gateway 'admin endpoints serving' "$gateway")

echo "== gateway: $binary (pid $gateway, $(awk '/^Max open files/ {print "soft " $4 ", hard " $5}' "/proc/$gateway/limits") files), gRPC $addr, admin $admin_addr"
attack_ok=1
# In the background, so that a signal to this script stops it at once (the EXIT trap kills it).
start_bg abuse "$abuse" fds --grpc "$addr" --admin "$admin_addr" --pid "$gateway" --count "$count" \
  --hold "$hold" --probe-every 2 --probe-timeout 2 --connect-timeout 3
wait "$started_pid" || attack_ok=0
cat "$work/abuse.log"
figure() { sed -n "s/^FIGURE $1=//p" "$work/abuse.log" | tail -n 1; }

alive=0
kill -0 "$gateway" 2>/dev/null && alive=1
accept_errors=$(grep -c 'cannot accept' "$work/gateway.log" || true)
echo "== gateway log: $(grep -c . "$work/gateway.log" || true) lines at RUST_LOG=$log_filter, $accept_errors of them \"cannot accept a connection\""
grep -m 3 'cannot accept' "$work/gateway.log" || true

echo "== checks"
check "the flood client ran to completion" [ "$attack_ok" -eq 1 ]
check "the gateway is still running" [ "$alive" -eq 1 ]
check_eq "probes before the flood answered (1 = all)" "$(figure before_ok)" 1
check "probes were made during the flood ($(figure fresh_calls) rounds)" lt 2 "$(figure fresh_calls)"
check_eq "CreateSession on a fresh connection: failures" "$(figure fresh_failed)" 0
check_eq "CreateSession on a connection from before the flood: failures" "$(figure kept_failed)" 0
check_eq "GET /healthz on a fresh connection: failures" "$(figure healthz_failed)" 0
check_lt "slowest probe in ms" "$(printf '%s\n' "$(figure fresh_max_ms)" "$(figure kept_max_ms)" "$(figure healthz_max_ms)" | sort -n | tail -n 1)" 2001
finish
