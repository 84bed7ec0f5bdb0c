#!/usr/bin/env bash
# ghz, the load tool gRPC users benchmark with, side by side with the repository's own `loadgen` against the same
# gateway (see BENCHMARKS.md, "ghz and loadgen"): the upstream stand-in (`kgen-gateway sandbox`, its own process)
# and kgen-gateway in front of it, as in scripts/bench.sh; then loadgen for --duration seconds and ghz for the same
# number of calls loadgen made, both closed loops at --concurrency over --connections HTTP/2 connections, with one
# user id. Prints each tool's throughput and latency percentiles, and the CPU time per call of the gateway and of
# the tool itself (from /proc), as `FIGURE` lines.
#
#   scripts/bench-ghz.sh [--duration 10] [--concurrency 64] [--connections 4]
#
# Builds the release gateway and loadgen; installs ghz (scripts/go-tools.sh ghz, pinned in tools/go/ghz). Not run by
# CI: timings on a shared 2-core machine are noise, not a test.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
duration=10
concurrency=64
connections=4
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
cd "$root"
release_build --bin kgen-gateway --example loadgen
target=$target_dir/release
eval "$(scripts/go-tools.sh ghz)"
ticks_per_s=$(getconf CLK_TCK)

# utime + stime of PID (and of its waited-for children), in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat"; }

start_bg sandbox env RUST_LOG=warn "$target/kgen-gateway" sandbox --listen 127.0.0.1:0
upstream=$started_pid
upstream_addr=$(wait_announced sandbox 'fake KGeN upstream (sandbox) listening' "$upstream")
start_bg gateway env KGEN_CLIENT_SECRET=sandbox-secret RUST_LOG="$(announcing_filter info)" \
  "$target/kgen-gateway" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --upstream-url "http://$upstream_addr" \
  --client-id sandbox-client --max-concurrent-upstream 10000 --log-format json
gateway=$started_pid
gateway_addr=$(wait_announced gateway 'kgen-gateway serving gRPC' "$gateway")

echo "== loadgen: ${duration}s, concurrency $concurrency over $connections connections"
"$target/examples/loadgen" --scenario gateway --target "$gateway_addr" --duration "$duration" \
  --concurrency "$concurrency" --connections "$connections" --pid "gateway=$gateway" --pid "upstream=$upstream" |
  tee "$work/loadgen.out"
calls=$(sed -n 's/^FIGURE .* calls_per_s=\([0-9.]*\).*/\1/p' "$work/loadgen.out" | head -n 1)
[ -n "$calls" ] || { echo "bench-ghz: loadgen printed no FIGURE line" >&2; exit 1; }
total=$(awk -v r="$calls" -v d="$duration" 'BEGIN { printf "%d", r * d }')

echo "== ghz: $total calls (what loadgen made), concurrency $concurrency over $connections connections"
before_gateway=$(cpu_ticks "$gateway")
before_upstream=$(cpu_ticks "$upstream")
before_self=$(awk '{ print $16 + $17 }' "/proc/$$/stat")
ghz --insecure --proto proto/kgen/session/v1/session.proto --import-paths proto \
  --call kgen.session.v1.SessionService/CreateSession -d '{"user_id":"bench-user"}' \
  -n "$total" -c "$concurrency" --connections "$connections" --timeout 10s --format json \
  "$gateway_addr" >"$work/ghz.json"
# ghz ran as this shell's child: its CPU is in this shell's cutime + cstime.
after_self=$(awk '{ print $16 + $17 }' "/proc/$$/stat")
after_gateway=$(cpu_ticks "$gateway")
after_upstream=$(cpu_ticks "$upstream")
python3 - "$work/ghz.json" "$ticks_per_s" "$((after_gateway - before_gateway))" \
  "$((after_upstream - before_upstream))" "$((after_self - before_self))" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
ticks_per_s = int(sys.argv[2])
gateway, upstream, ghz = (int(t) for t in sys.argv[3:6])
count = report["count"]
codes = report.get("statusCodeDistribution", {})
errors = count - codes.get("OK", 0)
latency = {p["percentage"]: p["latency"] / 1000 for p in report.get("latencyDistribution") or []}
per_call = lambda ticks: ticks / ticks_per_s * 1e6 / count
print(f"ghz: {count} calls, {report['rps']:.0f} calls/s, p50 {latency.get(50, 0):.0f} us, "
      f"p99 {latency.get(99, 0):.0f} us, errors {errors} {codes}")
print(f"CPU per call: gateway {per_call(gateway):.1f} us, upstream {per_call(upstream):.1f} us, "
      f"ghz {per_call(ghz):.1f} us")
print(f"FIGURE tool=ghz calls={count} calls_per_s={report['rps']:.0f} p50_us={latency.get(50, 0):.0f} "
      f"p90_us={latency.get(90, 0):.0f} p99_us={latency.get(99, 0):.0f} errors={errors} "
      f"cpu_us_per_call.gateway={per_call(gateway):.1f} cpu_us_per_call.upstream={per_call(upstream):.1f} "
      f"cpu_us_per_call.ghz={per_call(ghz):.1f}")
PY
