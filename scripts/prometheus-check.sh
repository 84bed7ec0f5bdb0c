#!/usr/bin/env bash
# The Prometheus kit (deploy/prometheus, deploy/grafana) against a real Prometheus scraping a real gateway:
#
#   scripts/prometheus-check.sh [--binary PATH] [--picture docs/images/dashboard.png]
#
# Starts the gateway on the sandbox (ports 0; two upstream slots with a 10 ms queue; a 2 s breaker cool-down and a
# threshold of 60 failures in a row, so that the sandbox's fast 503s span several scrapes before the breaker opens,
# else KGenUpstreamUnavailable's ratio, which only sees the increase after a series' first scrape, stays low) and Prometheus (`prometheus` and `promtool` from scripts/install-prometheus.sh) on 127.0.0.1:0 (it
# logs the bound address, `msg="Listening on" address=…`), scraping the gateway every second and evaluating
# every second rules.yml and a test copy of alerts.yml whose `for:` durations are cut to 3 s (a sed over the `for:`
# lines; the expressions and their windows are the ones deployed). Then drives the faults of the sandbox one after
# the other, each until the alerts it must raise are firing (or 30 s pass):
#   baseline   good calls                         no alert may be pending or firing
#   latency    fault:delay:1100, one at a time    KGenLatencyBudgetBurnFast, KGenLatencyBudgetBurnSlow
#   overload   fault:delay:400 from 10 callers    KGenLoadShedding, KGenErrorBudgetBurnFast, KGenErrorBudgetBurnSlow
#   401        fault:status:401                   KGenUpstreamCredentialsRejected
#   503        fault:status:503:0                 KGenCircuitBreakerOpen, KGenUpstreamUnavailable
#   reload     the caller-tokens file broken      KGenConfigReloadFailing
#   down       the gateway stopped                KGenGatewayDown
# and, before `down`, checks through the HTTP API that every rule is healthy, every recording rule and every query
# of the dashboard (its variables substituted) has data over the traffic window. With --picture, draws the
# dashboard's panels from that data (scripts/prometheus-kit.py picture, then rsvg-convert) into the PNG given.
# Everything it starts is stopped on exit; the last line is `N passed, N failed`. About a minute.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
lib_reports_checks=1
lib_keep_work_on_failure=1

binary=""
picture=""
while [ $# -gt 0 ]; do
  case $1 in
    --binary) binary=$2; shift 2 ;;
    --picture) picture=$2; shift 2 ;;
    *) echo "usage: $0 [--binary PATH] [--picture OUT.png]" >&2; exit 64 ;;
  esac
done
for tool in prometheus promtool python3; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: run scripts/install-prometheus.sh" >&2; exit 1; }
done
release_gateway
kit=("python3" "$root/scripts/prometheus-kit.py")
began=$(date +%s)

# === the gateway, with a caller-tokens file to break later (the reload phase); every call sends its token
printf 'checker:%s\n' "prometheus-check-token" >"$work/tokens.txt"
export KGEN_CALLER_TOKEN=prometheus-check-token
start_bg gateway env RUST_LOG=info "$binary" --sandbox --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  --log-format json --breaker-failure-threshold 60 --breaker-cool-down 2s \
  --max-concurrent-upstream 2 --upstream-queue-timeout 10ms --caller-tokens-file "$work/tokens.txt"
gateway_pid=$started_pid
admin=$(wait_announced gateway 'admin endpoints serving' "$gateway_pid")
grpc=$(wait_announced gateway 'kgen-gateway serving gRPC' "$gateway_pid")

# === Prometheus, with the test copy of the alerts
cp "$root/deploy/prometheus/rules.yml" "$work/rules.yml"
sed -E 's/^([[:space:]]+for:[[:space:]]*).*/\13s/' "$root/deploy/prometheus/alerts.yml" >"$work/alerts.yml"
check "the test copy of alerts.yml has every for: cut to 3s" \
  test "$(grep -cE '^[[:space:]]+for:' "$root/deploy/prometheus/alerts.yml")" -eq "$(grep -cE '^[[:space:]]+for: 3s$' "$work/alerts.yml")"
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - rules.yml
  - alerts.yml
scrape_configs:
  - job_name: kgen-gateway
    static_configs:
      - targets: ['$admin']
EOF
check "promtool check config (with the rules)" promtool check config "$work/prometheus.yml" >/dev/null
start_bg prometheus prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address=127.0.0.1:0 --log.level=info
prometheus_pid=$started_pid
prom=""
for _ in $(seq 100); do
  prom=$(sed -n 's/.*msg="Listening on" address=\([0-9.:]*\).*/\1/p' "$work/prometheus.log" | head -n 1)
  [ -n "$prom" ] && break
  kill -0 "$prometheus_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$prom" ] || { echo "prometheus did not log its address:" >&2; tail -n 30 "$work/prometheus.log" >&2; exit 1; }
url="http://$prom"
for _ in $(seq 100); do curl -fs "$url/-/ready" >/dev/null 2>&1 && break; sleep 0.1; done
check "prometheus is ready on $prom (port 0)" curl -fs "$url/-/ready" -o /dev/null
echo "gateway grpc=$grpc admin=$admin; prometheus $url"

# === traffic
# call_loop USER PAUSE: calls USER again and again, PAUSE seconds apart, until stopped.
call_loop() {
  while :; do
    "$binary" call "$1" --addr "http://$grpc" >/dev/null 2>&1 || true
    sleep "$2"
  done
}
loops=()
drive() { # drive COUNT USER PAUSE: COUNT loops in the background
  local i
  for i in $(seq "$1"); do
    start_bg "loop-$2-$i" call_loop "$2" "$3"
    loops+=("$started_pid")
  done
}
stop_loops() {
  local pid
  for pid in "${loops[@]}"; do stop_bg "$pid" 5 || true; done
  loops=()
}
# phase NAME SECONDS ALERT...: waits for the alerts; records which fired in this phase.
fired_report=()
phase() {
  local name=$1 seconds=$2 out
  shift 2
  out=$("${kit[@]}" wait "$url" "$seconds" "$@" || true)
  printf '%s\n' "$out" | sed "s/^/  [$name] /"
  local alert
  for alert in "$@"; do
    if grep -q "^firing $alert " <<<"$out"; then
      fired_report+=("$name -> $alert")
      check "$name fires $alert" true
    else
      check "$name fires $alert" false
    fi
  done
}
wait_scrapes() { # wait_scrapes N: N scrape intervals
  sleep "$1"
}

t0=$(date +%s)
echo "== baseline: good calls"
for i in $(seq 12); do "$binary" call "player-$i" --addr "http://$grpc" >/dev/null; done
wait_scrapes 4
"${kit[@]}" alerts "$url" >"$work/baseline-alerts.txt"
check "baseline: no alert pending or firing" test ! -s "$work/baseline-alerts.txt"
cat "$work/baseline-alerts.txt"

echo "== latency: fault:delay:1100, one call at a time"
drive 1 fault:delay:1100 0
phase latency 30 KGenLatencyBudgetBurnFast KGenLatencyBudgetBurnSlow
stop_loops

echo "== overload: fault:delay:400 from 10 callers (2 upstream slots, 10 ms queue)"
drive 10 fault:delay:400 0.05
phase overload 30 KGenLoadShedding KGenErrorBudgetBurnFast KGenErrorBudgetBurnSlow
stop_loops

echo "== KGeN rejects the credentials: fault:status:401"
drive 1 fault:status:401 0.2
phase 401 30 KGenUpstreamCredentialsRejected
stop_loops

echo "== KGeN answers 503: fault:status:503:0 (the breaker opens at 60 failures in a row)"
drive 1 fault:status:503:0 0.02
phase 503 30 KGenCircuitBreakerOpen KGenUpstreamUnavailable
stop_loops

echo "== a reload that fails: the caller-tokens file's new content does not parse"
printf 'this line has no token\n' >"$work/tokens.txt"
phase reload 30 KGenConfigReloadFailing
printf 'checker:%s\n' "prometheus-check-token" >"$work/tokens.txt"
wait_scrapes 2
t1=$(date +%s)

echo "== the recording rules and the dashboard's queries, over the ${t0}..${t1} window"
# The upstream outcomes this scenario never causes: their reason rules have no series.
no_data=()
for reason in INTERNAL_ERROR UNIMPLEMENTED RATE_LIMITED TIMEOUT REJECTED_REQUEST NOT_FOUND CONFLICT \
  UNEXPECTED_STATUS UNREACHABLE TLS_ERROR; do
  no_data+=("job_instance_tenant_reason:kgen_tenant_upstream_failures:rate5m{reason=\"UPSTREAM_$reason\"}")
done
"${kit[@]}" rules "$url" "$t0" "$t1" --no-data "${no_data[@]}" >"$work/rules-check.txt" || true
"${kit[@]}" dashboard "$url" "$root/deploy/grafana/kgen-gateway.json" "$t0" "$t1" >"$work/dashboard-check.txt" || true
cat "$work/rules-check.txt" "$work/dashboard-check.txt"
read -r passed failed < <(awk '/^PASS/ {p++} /^FAIL/ {f++} END {print p + 0, f + 0}' \
  "$work/rules-check.txt" "$work/dashboard-check.txt")
checks_passed=$((checks_passed + passed))
checks_failed=$((checks_failed + failed))

if [ -n "$picture" ]; then
  echo "== the dashboard's picture: $picture"
  "${kit[@]}" picture "$url" "$root/deploy/grafana/kgen-gateway.json" "$t0" "$t1" "$work/dashboard.svg"
  check "the dashboard renders to $picture" rsvg-convert -f png -o "$picture" "$work/dashboard.svg"
fi

echo "== down: the gateway stopped"
stop_bg "$gateway_pid" 15 || true
phase down 30 KGenGatewayDown

echo "== which fault fired which alert"
printf '  %s\n' "${fired_report[@]}"
echo "final alert states:"
"${kit[@]}" alerts "$url" | sed 's/^/  /'
echo "ran $(($(date +%s) - began)) s"
finish
