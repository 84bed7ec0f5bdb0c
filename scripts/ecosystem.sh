#!/usr/bin/env bash
# The gRPC ecosystem's own tools against a real gateway: what an operator or integrator would run first.
#
#   scripts/ecosystem.sh [--binary target/release/kgen-gateway]
#
# Installs the pinned Go tools (scripts/go-tools.sh: grpcurl, grpc-health-probe, ghz and h2spec, pinned in tools/go,
# into tools/bin; Go 1.26 needed), builds the gateway unless --binary names one (`cargo build --release --locked`;
# honours CARGO_TARGET_DIR), and starts it with --sandbox on loopback port 0 (both listeners; addresses read from its JSON
# log), once in plaintext (h2c) and once with TLS (a self-signed certificate made with openssl in the scratch
# directory). Then checks:
#   - grpcurl through server reflection: `list`, `describe kgen.session.v1.SessionService`, a CreateSession call,
#     and fault:status:429, whose google.rpc details grpcurl decodes (ErrorInfo reason UPSTREAM_RATE_LIMITED and
#     RetryInfo 1s), both in its default error output and with -format-error; over TLS, `list` with -cacert;
#   - grpc-health-probe: SERVING (exit 0) for '' and for kgen.session.v1.SessionService, NotFound (exit 3) for an
#     unknown service; over TLS with -tls-ca-cert;
#   - h2spec on both ports, judged against scripts/h2spec-known-failures.txt (see docs/h2spec.md): a failing case
#     not listed fails the script, and so does a case listed as `fails` or `skipped` that no longer does;
#   - the drain (--drain-delay 2s --shutdown-grace 5s): with a 3 s call in flight and a health Watch open (grpcurl),
#     SIGTERM: /readyz turns 503, grpc-health-probe (a new connection per check, as a kubelet's) gets NOT_SERVING
#     (exit 4) during the drain delay, the Watch sees NOT_SERVING, then the listener closes and the probe cannot
#     connect (exit 2); the call in flight still succeeds, and the gateway exits 0 without cutting anything off.
# Each check prints PASS/FAIL; the last line is `N passed, N failed`; exit status 1 if any check failed.
# Environment: CARGO_TARGET_DIR.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
lib_reports_checks=1
lib_keep_work_on_failure=1

binary=""
while [ $# -gt 0 ]; do
  case $1 in
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    *) echo "usage: scripts/ecosystem.sh [--binary PATH]" >&2; exit 64 ;;
  esac
done

say() { printf '== %s\n' "$*"; }
for tool in go openssl curl python3; do
  command -v "$tool" >/dev/null || { echo "ecosystem: $tool is not installed" >&2; exit 1; }
done

say "install the pinned Go tools (scripts/go-tools.sh)"
"$root/scripts/go-tools.sh"
PATH="$root/tools/bin:$PATH"
release_gateway
[ -x "$binary" ] || { echo "ecosystem: no gateway binary at $binary" >&2; exit 1; }

service=kgen.session.v1.SessionService
known="$root/scripts/h2spec-known-failures.txt"

# start_gateway NAME ARGS...: the gateway with --sandbox and ARGS, no KGEN_* variable from this environment; sets
# gw_pid, gw_addr and gw_admin.
start_gateway() {
  local name=$1
  shift
  local unset_kgen=() var
  while IFS= read -r var; do unset_kgen+=(-u "$var"); done < <(compgen -e | grep '^KGEN_' || true)
  start_bg "$name" env ${unset_kgen[@]+"${unset_kgen[@]}"} RUST_LOG=info "$binary" --sandbox \
    --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --log-format json "$@"
  gw_pid=$started_pid
  gw_admin=$(wait_announced "$name" 'admin endpoints serving' "$gw_pid")
  gw_addr=$(wait_announced "$name" 'kgen-gateway serving gRPC' "$gw_pid")
  echo "$name: pid $gw_pid, gRPC on $gw_addr, admin on $gw_admin"
}

# has FILE TEXT...: FILE holds every TEXT (fixed strings); otherwise shows FILE.
has() {
  local file=$1 text
  shift
  for text in "$@"; do
    if ! grep -qF -e "$text" "$file"; then
      echo "  missing '$text' in:"
      sed 's/^/  | /' "$file" | head -n 40
      return 1
    fi
  done
}
# lacks FILE TEXT: FILE does not hold TEXT (a fixed string).
lacks() {
  ! grep -qF -e "$2" "$1" || { echo "  '$2' found in $1:"; grep -F -e "$2" "$1" | head -n 5 | sed 's/^/  | /'; return 1; }
}
# exits_with CODE OUT CMD ARGS...: runs CMD (stdout to OUT, stderr to OUT.err) and checks its exit status. (grpcurl
# prints errors, also with -format-error, and grpc-health-probe its verdict on stderr.)
exits_with() {
  local want=$1 out=$2 rc=0
  shift 2
  "$@" >"$out" 2>"$out.err" || rc=$?
  [ "$rc" -eq "$want" ] || {
    echo "  exit status $rc, want $want: $*"
    sed 's/^/  | /' "$out" "$out.err" | head -n 40
    return 1
  }
}
# wait_for SECONDS CMD ARGS...: polls CMD every 0.1 s until it succeeds or the time is up.
wait_for() {
  local seconds=$1 _
  shift
  for _ in $(seq $((seconds * 10))); do
    "$@" && return 0
    sleep 0.1
  done
  "$@"
}

# === grpcurl and grpc-health-probe, plaintext ===

say "start kgen-gateway --sandbox (h2c) with --drain-delay 2s --shutdown-grace 5s"
start_gateway gateway --drain-delay 2s --shutdown-grace 5s
addr=$gw_addr admin=$gw_admin gateway_pid=$gw_pid
user="ecosystem-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"

say "grpcurl $(go version -m "$root/tools/bin/grpcurl" | awk '$1 == "mod" { print $3 }')"
check "grpcurl list (reflection) names the session, health and reflection services" \
  exits_with 0 "$work/list.out" grpcurl -plaintext "$addr" list
check "  ... and its output lists them" has "$work/list.out" \
  "$service" grpc.health.v1.Health grpc.reflection.v1.ServerReflection
check "grpcurl describe $service (reflection)" \
  exits_with 0 "$work/describe.out" grpcurl -plaintext "$addr" describe "$service"
check "  ... shows the three RPCs" has "$work/describe.out" \
  "rpc CreateSession ( .kgen.session.v1.CreateSessionRequest ) returns ( .kgen.session.v1.CreateSessionResponse );" \
  "rpc CreateSessions ( stream .kgen.session.v1.CreateSessionRequest ) returns ( stream .kgen.session.v1.CreateSessionsResponse );" \
  "rpc CreateSessionBatch ( .kgen.session.v1.CreateSessionBatchRequest ) returns ( .kgen.session.v1.CreateSessionBatchResponse );"
check "grpcurl CreateSession for a new user succeeds" \
  exits_with 0 "$work/call.out" grpcurl -plaintext -max-time 10 -d "{\"user_id\":\"$user\"}" "$addr" "$service/CreateSession"
check "  ... with the user, is_new_user true and a session id" has "$work/call.out" \
  "\"userId\": \"$user\"" '"isNewUser": true' '"sessionId": "'
# grpcurl exits 64 + the status code: RESOURCE_EXHAUSTED (8) gives 72.
check "grpcurl fault:status:429 exits 72 (RESOURCE_EXHAUSTED)" \
  exits_with 72 "$work/429.out" grpcurl -plaintext -max-time 10 -d '{"user_id":"fault:status:429"}' "$addr" \
  "$service/CreateSession"
check "  ... and prints the details decoded: ErrorInfo UPSTREAM_RATE_LIMITED, RetryInfo 1s" has "$work/429.out.err" \
  'Code: ResourceExhausted' '"@type": "type.googleapis.com/google.rpc.ErrorInfo"' \
  '"reason": "UPSTREAM_RATE_LIMITED"' '"domain": "kgen-gateway"' '"upstream_status": "429"' \
  '"@type": "type.googleapis.com/google.rpc.RetryInfo"' '"retryDelay": "1s"'
check "grpcurl -format-error fault:status:429 exits 72" \
  exits_with 72 "$work/429j.out" grpcurl -plaintext -format-error -max-time 10 \
  -d '{"user_id":"fault:status:429"}' "$addr" "$service/CreateSession"
check "  ... and prints the status as JSON: code 8, reason UPSTREAM_RATE_LIMITED, retryDelay 1s" has "$work/429j.out.err" \
  '"code": 8' '"reason": "UPSTREAM_RATE_LIMITED"' '"retryDelay": "1s"'

say "grpc-health-probe $(go version -m "$root/tools/bin/grpc-health-probe" | awk '$1 == "mod" { print $3 }')"
check "grpc-health-probe '' -> SERVING (exit 0)" exits_with 0 "$work/probe.out" grpc-health-probe -addr "$addr"
check "grpc-health-probe $service -> SERVING (exit 0)" \
  exits_with 0 "$work/probe-svc.out" grpc-health-probe -addr "$addr" -service "$service"
check "  ... prints 'status: SERVING'" has "$work/probe-svc.out.err" "status: SERVING"
check "grpc-health-probe for an unknown service -> NotFound (exit 3)" \
  exits_with 3 "$work/probe-unknown.out" grpc-health-probe -addr "$addr" -service no.such.Service

# === h2spec ===

# h2spec_run LABEL ARGS...: runs h2spec (bounded) with a JUnit report; prints `ID STATUS TITLE` lines (tab-separated)
# into $work/h2spec-LABEL.tsv. IDs are h2spec's own (`http2/5.1/9`: section 5.1, case 9), as `h2spec ID` takes them.
h2spec_run() {
  local label=$1 rc=0
  shift
  timeout 300 h2spec "$@" -j "$work/h2spec-$label.xml" >"$work/h2spec-$label.out" 2>&1 || rc=$?
  tail -n 1 "$work/h2spec-$label.out"
  [ "$rc" -le 1 ] || { echo "  h2spec exited $rc"; tail -n 20 "$work/h2spec-$label.out"; return 1; }
  python3 - "$work/h2spec-$label.xml" >"$work/h2spec-$label.tsv" <<'EOF'
import sys
import xml.etree.ElementTree as ET

for suite in ET.parse(sys.argv[1]).getroot().iter("testsuite"):
    for number, case in enumerate(suite.iter("testcase"), 1):
        if case.find("error") is not None or case.find("failure") is not None:
            status = "failed"
        elif case.find("skipped") is not None:
            status = "skipped"
        else:
            status = "passed"
        print(f"{suite.get('package')}/{number}\t{status}\t{case.get('classname')}")
EOF
  [ -s "$work/h2spec-$label.tsv" ]
}
# h2spec_unlisted LABEL: no case outside the known list failed or was skipped.
h2spec_unlisted() {
  local out
  out=$(awk -F'\t' 'NR == FNR { if ($0 !~ /^#/ && NF) { split($0, f, " "); listed[f[1]] = 1 }; next }
    $2 != "passed" && !($1 in listed) { printf "  %s %s, and it is not in scripts/h2spec-known-failures.txt: %s\n", $1, $2, $3 }' \
    "$known" "$work/h2spec-$1.tsv")
  [ -z "$out" ] || { printf '%s\n' "$out"; return 1; }
}
# h2spec_listed LABEL: every listed `fails` case failed and every `skipped` one was skipped; the outcome of each
# `race` case is shown, not judged.
h2spec_listed() {
  local verdicts
  verdicts=$(awk -F'\t' 'NR == FNR { if ($0 !~ /^#/ && NF) { split($0, f, " "); class[f[1]] = f[2] }; next }
    { seen[$1] = $2; title[$1] = $3 }
    END {
      for (id in class) {
        if (!(id in seen)) printf "BAD %s is listed but h2spec ran no such case\n", id
        else if (class[id] == "race") printf "RACE %s %s: %s\n", id, seen[id], title[id]
        else if (class[id] != "fails" && class[id] != "skipped") printf "BAD %s has an unknown class %s\n", id, class[id]
        else if (class[id] == "fails" && seen[id] != "failed" || class[id] == "skipped" && seen[id] != "skipped")
          printf "BAD %s is listed as %s but %s: update scripts/h2spec-known-failures.txt and docs/h2spec.md\n", id, class[id], seen[id]
      }
    }' "$known" "$work/h2spec-$1.tsv" | sort)
  sed -n 's/^RACE /  (race, not judged) /p' <<<"$verdicts"
  ! grep -q '^BAD ' <<<"$verdicts" || { sed -n 's/^BAD /  /p' <<<"$verdicts"; return 1; }
}

say "h2spec $(go version -m "$root/tools/bin/h2spec" | awk '$1 == "mod" { print $3 }') against the h2c port"
check "h2spec (h2c) ran and wrote its report" h2spec_run h2c -h 127.0.0.1 -p "${addr##*:}"
check "h2spec (h2c): no failing or skipped case outside scripts/h2spec-known-failures.txt" h2spec_unlisted h2c
check "h2spec (h2c): every case listed as fails/skipped still fails/is skipped" h2spec_listed h2c

# === the drain ===

say "drain: SIGTERM with a fault:delay:3000 call in flight and a health Watch open"
start_bg watch grpcurl -plaintext -max-time 30 -d '{"service":""}' "$addr" grpc.health.v1.Health/Watch
watch_pid=$started_pid
start_bg delayed grpcurl -plaintext -max-time 20 -d '{"user_id":"fault:delay:3000"}' "$addr" "$service/CreateSession"
delayed_pid=$started_pid
upstream_busy() { curl -fsS "http://$admin/metrics" | grep -qE '^kgen_upstream_in_flight [1-9]'; }
check "the delayed call is in flight upstream (kgen_upstream_in_flight >= 1)" wait_for 10 upstream_busy
check "the health Watch saw SERVING" wait_for 10 grep -qF '"status": "SERVING"' "$work/watch.log"
kill -TERM "$gateway_pid"
not_ready() { [ "$(curl -sS -o /dev/null -w '%{http_code}' "http://$admin/readyz")" = 503 ]; }
check "/readyz answers 503 while draining" wait_for 5 not_ready
# During the drain delay the listener still accepts: the probe's new connection is told NOT_SERVING (exit 4).
check "grpc-health-probe '' during the drain delay -> NOT_SERVING (exit 4)" \
  exits_with 4 "$work/probe-drain.out" grpc-health-probe -addr "$addr"
check "grpc-health-probe $service during the drain delay -> NOT_SERVING (exit 4)" \
  exits_with 4 "$work/probe-drain-svc.out" grpc-health-probe -addr "$addr" -service "$service"
check "  ... saying NOT_SERVING" has "$work/probe-drain-svc.out.err" "NOT_SERVING"
# Then the listener closes: a new connection is refused, so the probe cannot connect (exit 2).
probe_refused() {
  local rc=0
  grpc-health-probe -addr "$addr" -connect-timeout 200ms >/dev/null 2>&1 || rc=$?
  [ "$rc" -eq 2 ]
}
check "grpc-health-probe after the drain delay: cannot connect (exit 2), the listener is closed" wait_for 5 probe_refused
check "the health Watch opened before SIGTERM saw NOT_SERVING" \
  wait_for 5 grep -qF '"status": "NOT_SERVING"' "$work/watch.log"
# An open Watch is a call in flight too: end it, so that the drain waits only for the delayed call.
stop_bg "$watch_pid" 5 || true
delayed_rc=0
wait_bg "$delayed_pid" 15 || delayed_rc=$?
check "the call in flight during the drain succeeded (grpcurl exit ${delayed_rc})" eq "$delayed_rc" 0
check "  ... with its session" has "$work/delayed.log" '"userId": "fault:delay:3000"' '"sessionId": "'
gateway_rc=0
wait_bg "$gateway_pid" 15 || gateway_rc=$?
check_eq "the gateway exited after the drain with status 0" "$gateway_rc" 0
check "  ... within the grace period, cutting nothing off" lacks "$work/gateway.log" "grace period over"

# === TLS ===

say "start kgen-gateway --sandbox with TLS (a self-signed certificate for 127.0.0.1)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$work/key.pem" -out "$work/cert.pem" 2>"$work/openssl.log"
start_gateway gateway-tls --tls-cert "$work/cert.pem" --tls-key "$work/key.pem"
tls_addr=$gw_addr
check "grpcurl list over TLS (-cacert)" \
  exits_with 0 "$work/list-tls.out" grpcurl -cacert "$work/cert.pem" "$tls_addr" list
check "  ... lists $service" has "$work/list-tls.out" "$service"
check "grpc-health-probe -tls -tls-ca-cert -> SERVING (exit 0)" \
  exits_with 0 "$work/probe-tls.out" grpc-health-probe -addr "$tls_addr" -tls -tls-ca-cert "$work/cert.pem"
check "h2spec (TLS) ran and wrote its report" h2spec_run tls -t -k -h 127.0.0.1 -p "${tls_addr##*:}"
check "h2spec (TLS): no failing or skipped case outside scripts/h2spec-known-failures.txt" h2spec_unlisted tls
check "h2spec (TLS): every case listed as fails/skipped still fails/is skipped" h2spec_listed tls

finish
