#!/usr/bin/env bash
# Runs the benchmark scenarios side by side in one invocation (see BENCHMARKS.md): the upstream stand-in
# (`kgen-gateway sandbox`, its own process), kgen-gateway in front of it, and the `echo_floor` tonic server; then the
# `loadgen` example against each: direct (REST to the upstream), gateway (gRPC through kgen-gateway), echo (tonic
# alone). Prints each scenario's throughput, latency percentiles, errors and CPU time per call of every process.
# Usage: scripts/bench.sh [--duration 10] [--concurrency 64] [--rate N] [--upstream-h2c] [--worker-threads N]
#                         [--log-level info] [--gateway-flag FLAG]...
# --gateway-flag passes one more argument to the gateway (repeatable), e.g. `--gateway-flag --connect=false` to
# measure native gRPC without the Connect protocol in front of it.
# --worker-threads N gives every Rust process (upstream stand-in, gateway, echo floor, loadgen) N runtime threads
# (default: tokio's, one per CPU). --log-level is the gateway's RUST_LOG (default info, its production default; to a
# filter that would hide its INFO 'serving gRPC' line, with the address it listens on, its start-up targets at info
# are added (announcing_filter in scripts/lib.sh): a few start-up and shutdown lines, none per call).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
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
    --gateway-flag) gateway_flags+=("$2"); shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
cd "$root"
release_build --bin kgen-gateway --example loadgen --example echo_floor
target=$target_dir/release

# The upstream stand-in, the gateway and the echo floor listen on port 0 and announce their address in their logs (the
# gateway's 'serving gRPC' line is INFO: announcing_filter adds its start-up targets at info to a --log-level that
# would hide it).
gateway_filter=$(announcing_filter "$log_level")
start_bg sandbox env RUST_LOG=warn "$target/kgen-gateway" sandbox --listen 127.0.0.1:0 "${workers[@]}"
upstream=$started_pid
upstream_addr=$(wait_announced sandbox 'fake KGeN upstream (sandbox) listening' "$upstream")
start_bg gateway env KGEN_CLIENT_SECRET=sandbox-secret RUST_LOG="$gateway_filter" \
  "$target/kgen-gateway" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --upstream-url "http://$upstream_addr" \
  --client-id sandbox-client --max-concurrent-upstream 10000 --log-format json "${workers[@]}" "${gateway_flags[@]}"
gateway=$started_pid
gateway_addr=$(wait_announced gateway 'kgen-gateway serving gRPC' "$gateway")
start_bg echo "$target/examples/echo_floor" 127.0.0.1:0
echo_floor=$started_pid
echo_addr=$(wait_announced echo 'echo_floor listening' "$echo_floor")

echo "== gateway RUST_LOG=$gateway_filter, worker threads: ${TOKIO_WORKER_THREADS:-one per CPU}, flags: ${gateway_flags[*]:-none}"
echo "== RSS idle: gateway $(rss_kib "$gateway") KiB"
common=(--duration "$duration" --concurrency "$concurrency" "${rate[@]}")
echo "== direct: REST/JSON straight to the upstream stand-in"
"$target/examples/loadgen" --scenario direct --target "$upstream_addr" "${common[@]}" --pid "upstream=$upstream"
echo "== gateway: gRPC through kgen-gateway to the same upstream"
"$target/examples/loadgen" --scenario gateway --target "$gateway_addr" "${common[@]}" \
  --pid "gateway=$gateway" --pid "upstream=$upstream"
echo "== echo floor: a minimal tonic server answering a canned response"
"$target/examples/loadgen" --scenario echo --target "$echo_addr" "${common[@]}" --pid "echo=$echo_floor"
echo "== RSS after: gateway $(rss_kib "$gateway") KiB"
