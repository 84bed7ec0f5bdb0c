#!/usr/bin/env bash
# The benchmark report in one command (BENCHMARKS.md, bench/README.md): every measurement the charts need, on one
# release build, then the charts. In order, each step's whole output in RESULTS/STEP.txt:
#   closed-loop        scripts/bench.sh (closed loop, --duration, --concurrency): CPU per call by scenario, and the
#                      gateway's saturation throughput
#   open-loop          scripts/bench.sh --rate R (open loop): latency percentiles, direct vs gateway vs echo floor, at
#                      R = a quarter of the gateway's calls/s in closed-loop (or --rate R)
#   memory-PROTO-N     scripts/memory-10k.sh --calls N for each N of --memory-calls, the gateway's upstream over
#                      HTTP/1.1 (PROTO http1), then over h2c (--upstream-h2c): the gateway's RSS against calls in flight
# then RESULTS/figures.txt (a RUN line saying how and where the report was made, then every step's FIGURE lines, in
# the order above) and scripts/bench-charts.py, which draws CHARTS/cpu-per-call.svg, latency.svg and memory.svg and
# prints a summary (also in RESULTS/summary.txt). A previous report's files in RESULTS and CHARTS are removed first.
#
# Usage: scripts/bench-report.sh [--duration 10] [--concurrency 64] [--rate R] [--worker-threads N] [--log-level info]
#                                [--memory-calls 1000,2500,5000,10000] [--hold-ms 15000] [--quick] [--out DIR]
# --duration, --concurrency, --worker-threads and --log-level go to both scripts/bench.sh runs; --hold-ms is how long
# the upstream holds each call in the memory steps. --out DIR: RESULTS is DIR/results and CHARTS DIR/charts (default
# bench/, the report committed next to BENCHMARKS.md). --quick: a smoke test of the whole chain (duration 2 s, memory
# at 1000 and 2500 calls held 3 s; about a minute after the build) whose figures mean nothing; unless --out is given,
# it writes to $CARGO_TARGET_DIR/bench-report-quick (default target/), outside git, so that it cannot replace the
# committed report. Options given explicitly win over --quick's. Every server is started by the scripts above on port
# 0; every step runs in a process group of its own, stopped with whatever it started if this script exits early.
# Each step prints how long it took; at the default settings the whole report takes about 4 minutes after the build
# (each scripts/bench.sh run about 40 s: 3 scenarios x (2 s warm-up + 10 s); each memory point about 18 s).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
duration=""
concurrency=64
rate=""
bench_flags=()
worker_threads=default
memory_calls=""
hold_ms=""
quick=0
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --worker-threads) worker_threads=$2; bench_flags+=("$1" "$2"); shift 2 ;;
    --log-level) bench_flags+=("$1" "$2"); shift 2 ;;
    --memory-calls) memory_calls=$2; shift 2 ;;
    --hold-ms) hold_ms=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
if [ "$quick" -eq 1 ]; then
  duration=${duration:-2}
  memory_calls=${memory_calls:-1000,2500}
  hold_ms=${hold_ms:-3000}
  out=${out:-$target_dir/bench-report-quick}
fi
duration=${duration:-10}
memory_calls=${memory_calls:-1000,2500,5000,10000}
hold_ms=${hold_ms:-15000}
out=${out:-$root/bench}
IFS=, read -r -a counts <<<"$memory_calls"
for value in "$duration" "$concurrency" "$hold_ms" ${rate:+"$rate"} "${counts[@]}"; do
  if ! is_number "$value" || [ "$value" -eq 0 ]; then
    echo "bench-report: not a positive whole number: '$value'" >&2
    exit 2
  fi
done
for n in "${counts[@]}"; do
  # memory-10k.sh opens 10 connections of N / 10 streams each.
  [ "$((n % 10))" -eq 0 ] || { echo "bench-report: --memory-calls: $n is not a multiple of 10" >&2; exit 2; }
done
mkdir -p "$out/results" "$out/charts"
out=$(cd "$out" && pwd)
results=$out/results
charts=$out/charts
rm -f "$results"/closed-loop.txt "$results"/open-loop.txt "$results"/memory-*.txt "$results"/figures.txt \
  "$results"/summary.txt "$charts"/cpu-per-call.svg "$charts"/latency.svg "$charts"/memory.svg
cd "$root"
command -v python3 >/dev/null || { echo "bench-report: python3 is not installed" >&2; exit 1; }

step_pid=""
at_exit() {
  # The step still running, if any, with everything in its process group (loadgen, h2load): its own exit trap then
  # stops the servers it started.
  if [ -n "$step_pid" ]; then kill -TERM -- "-$step_pid" 2>/dev/null || true; fi
}
steps=()
# step NAME CMD ARGS...: runs CMD in a session of its own, its output shown and kept in $results/NAME.txt; stops the
# report if CMD fails or prints no FIGURE line.
step() {
  local name=$1 status=0 started=$SECONDS tail_pid
  shift
  echo "== $name: ${*#"$root/"}"
  : >"$results/$name.txt" # before tail opens it
  setsid "$@" >>"$results/$name.txt" 2>&1 &
  step_pid=$!
  lib_pids+=("$step_pid")
  # tail in the background: a signal to this script interrupts `wait` at once (not so a command in the foreground).
  tail -n +1 -f --pid="$step_pid" "$results/$name.txt" &
  tail_pid=$!
  lib_pids+=("$tail_pid")
  wait "$tail_pid" || true
  lib_forget "$tail_pid"
  wait "$step_pid" || status=$?
  lib_forget "$step_pid"
  step_pid=""
  if [ "$status" -ne 0 ]; then
    echo "bench-report: $name failed (exit status $status); its output is in $results/$name.txt" >&2
    exit 1
  fi
  grep -q '^FIGURE ' "$results/$name.txt" ||
    { echo "bench-report: $name printed no FIGURE line ($results/$name.txt)" >&2; exit 1; }
  steps+=("$name")
  echo "== $name took $((SECONDS - started)) s"
}
# figure FILE SCENARIO KEY: the value of KEY in FILE's FIGURE line for SCENARIO.
figure() {
  awk -v scenario="scenario=$2" -v key="$3=" '$1 == "FIGURE" && $2 == scenario {
    for (i = 3; i <= NF; i++) if (index($i, key) == 1) print substr($i, length(key) + 1) }' "$1"
}

echo "== build: kgen-gateway, loadgen, echo_floor (release)"
release_build --bin kgen-gateway --example loadgen --example echo_floor
load_start=$(cut -d' ' -f1 /proc/loadavg)

bench_common=(--duration "$duration" --concurrency "$concurrency" "${bench_flags[@]}")
step closed-loop "$root/scripts/bench.sh" "${bench_common[@]}"
rate_from=given
if [ -z "$rate" ]; then
  saturation=$(figure "$results/closed-loop.txt" gateway calls_per_s)
  is_number "$saturation" || { echo "bench-report: no gateway calls_per_s in closed-loop.txt" >&2; exit 1; }
  rate=$((saturation / 4 > 0 ? saturation / 4 : 1))
  rate_from=quarter
  echo "== open-loop rate: a quarter of the gateway's $saturation calls/s = $rate calls/s"
fi
step open-loop "$root/scripts/bench.sh" "${bench_common[@]}" --rate "$rate"
for protocol in http1 h2c; do
  flags=()
  if [ "$protocol" = h2c ]; then flags=(--upstream-h2c); fi
  for n in "${counts[@]}"; do
    step "memory-$protocol-$n" "$root/scripts/memory-10k.sh" --binary "$target_dir/release/kgen-gateway" \
      --calls "$n" --hold-ms "$hold_ms" "${flags[@]}"
  done
done

dirty=$(git status --porcelain -- src proto Cargo.toml Cargo.lock build.rs bench/loadgen.rs bench/echo_floor.rs \
  2>/dev/null | wc -l)
{
  echo "RUN date=$(date -u +%Y-%m-%dT%H:%MZ) commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "dirty=$dirty cpus=$(nproc) quick=$quick duration_s=$duration concurrency=$concurrency" \
    "worker_threads=$worker_threads open_rate=$rate open_rate_from=$rate_from hold_ms=$hold_ms" \
    "memory_calls=$memory_calls loadavg_start=$load_start loadavg_end=$(cut -d' ' -f1 /proc/loadavg)" \
    "elapsed_s=$SECONDS"
  for name in "${steps[@]}"; do grep '^FIGURE ' "$results/$name.txt"; done
} >"$results/figures.txt"
echo "== charts: scripts/bench-charts.py --figures ${results#"$root/"}/figures.txt --out ${charts#"$root/"}"
python3 "$root/scripts/bench-charts.py" --figures "$results/figures.txt" --out "$charts" | tee "$results/summary.txt"
echo "== report done in $SECONDS s: ${results#"$root/"}/ and ${charts#"$root/"}/"
