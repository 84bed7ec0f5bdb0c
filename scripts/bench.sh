#!/usr/bin/env bash
# Runs the benchmark scenarios side by side in one invocation (see BENCHMARKS.md): the upstream stand-in
# (`kgen-gateway sandbox`, its own process), kgen-gateway in front of it, and the `echo_floor` tonic server; then the
# `loadgen` example against each: direct (REST to the upstream), gateway (gRPC through kgen-gateway), echo (tonic
# alone). Prints each scenario's throughput, latency percentiles, errors and CPU time per call of every process.
# Usage: scripts/bench.sh [--duration 10] [--concurrency 64] [--rate N] [--upstream-h2c] [--worker-threads N]
#                         [--log-level info]
# --worker-threads N gives every Rust process (upstream stand-in, gateway, echo floor, loadgen) N runtime threads
# (default: tokio's, one per CPU). --log-level is the gateway's RUST_LOG (default info, its production default).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
duration=10
concurrency=64
rate=()
gateway_flags=()
workers=()
log_level=info
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --rate) rate=(--rate "$2"); shift 2 ;;
    --upstream-h2c) gateway_flags+=(--upstream-http2-prior-knowledge); shift ;;
    --worker-threads) workers=(--worker-threads "$2"); export TOKIO_WORKER_THREADS=$2; shift 2 ;;
    --log-level) log_level=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
cd "$root"
cargo build --release --locked --quiet --bin kgen-gateway --example loadgen --example echo_floor
target=${CARGO_TARGET_DIR:-$root/target}/release
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { echo "process $2 exited" >&2; cat "$work"/*.log >&2; exit 1; }
    sleep 0.1
  done
  echo "port $1 never opened" >&2; exit 1
}

upstream_port=$(free_port); gateway_port=$(free_port); echo_port=$(free_port)
RUST_LOG=warn "$target/kgen-gateway" sandbox --listen "127.0.0.1:$upstream_port" "${workers[@]}" 2>"$work/sandbox.log" &
upstream=$!; pids+=("$upstream"); wait_port "$upstream_port" "$upstream"
KGEN_CLIENT_SECRET=sandbox-secret RUST_LOG=$log_level "$target/kgen-gateway" --listen "127.0.0.1:$gateway_port" \
  --admin-listen 127.0.0.1:0 --upstream-url "http://127.0.0.1:$upstream_port" --client-id sandbox-client \
  --max-concurrent-upstream 10000 --log-format json "${workers[@]}" "${gateway_flags[@]}" 2>"$work/gateway.log" &
gateway=$!; pids+=("$gateway"); wait_port "$gateway_port" "$gateway"
"$target/examples/echo_floor" "127.0.0.1:$echo_port" >"$work/echo.log" 2>&1 &
echo_floor=$!; pids+=("$echo_floor"); wait_port "$echo_port" "$echo_floor"

echo "== gateway RUST_LOG=$log_level, worker threads: ${TOKIO_WORKER_THREADS:-one per CPU}"
echo "== RSS idle: gateway $(awk '/^VmRSS/ {print $2}' /proc/$gateway/status) KiB"
common=(--duration "$duration" --concurrency "$concurrency" "${rate[@]}")
echo "== direct: REST/JSON straight to the upstream stand-in"
"$target/examples/loadgen" --scenario direct --target "127.0.0.1:$upstream_port" "${common[@]}" --pid "upstream=$upstream"
echo "== gateway: gRPC through kgen-gateway to the same upstream"
"$target/examples/loadgen" --scenario gateway --target "127.0.0.1:$gateway_port" "${common[@]}" \
  --pid "gateway=$gateway" --pid "upstream=$upstream"
echo "== echo floor: a minimal tonic server answering a canned response"
"$target/examples/loadgen" --scenario echo --target "127.0.0.1:$echo_port" "${common[@]}" --pid "echo=$echo_floor"
echo "== RSS after: gateway $(awk '/^VmRSS/ {print $2}' /proc/$gateway/status) KiB"
