#!/usr/bin/env bash
# kgen-gateway side by side with a Python bridge (grpc.aio + aiohttp + uvloop) and a Node bridge (@grpc/grpc-js +
# node:http) doing the same gRPC -> REST translation against the same upstream stand-in (bench/bridges/README.md).
#
#   scripts/bench-bridges.sh [--duration 10] [--concurrency 64]
#
# Builds the release binary and the loadgen example (honours CARGO_TARGET_DIR), installs the bridges (venv in
# bench/bridges/python/.venv, created or reused, `pip install -r requirements.txt`, stubs from generate.sh; `npm ci` in
# bench/bridges/node with npm's cache in bench/bridges/node/.npm-cache), starts `kgen-gateway sandbox` and the gateway
# in front of it (the flags of scripts/bench.sh) and both bridges, all on port 0 (the addresses they announce in their
# logs), checks that every server answers correctly (a fresh user's session field by field against the
# gateway's, is_new_user, the parsed session_started_at, fault:status:429 -> RESOURCE_EXHAUSTED, empty user_id ->
# INVALID_ARGUMENT), then runs loadgen's `gateway` scenario (closed loop, plain gRPC CreateSession) against the gateway,
# the Python bridge and the Node bridge in turn, and ends with a table of calls/s, latency, errors, CPU per call, the
# CPU other processes used meanwhile (a run disturbed by other work on the machine shows there), and the throughput
# ratios. The bridges are single-process (one event loop each); the gateway uses every core. Exit status 1 when a check
# fails or a timed run had errors. Environment: CARGO_TARGET_DIR, PYTHON (interpreter for the venv, default python3).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
duration=10
concurrency=64
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
py_dir="$root/bench/bridges/python"
node_dir="$root/bench/bridges/node"
cd "$root"
for tool in cargo node npm "${PYTHON:-python3}"; do
  command -v "$tool" >/dev/null || { echo "bench-bridges: $tool is not installed" >&2; exit 1; }
done

echo "== build: kgen-gateway and loadgen (release)"
release_build --bin kgen-gateway --example loadgen
target=$target_dir/release
echo "== python bridge: venv, pip install -r requirements.txt, generate.sh"
[ -x "$py_dir/.venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$py_dir/.venv"
"$py_dir/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$py_dir/requirements.txt"
PYTHON="$py_dir/.venv/bin/python" "$py_dir/generate.sh"
echo "== node bridge: npm ci"
(cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error --cache "$node_dir/.npm-cache")

# Every server listens on port 0 and announces its address in its log (the gateway at RUST_LOG=warn plus its start-up
# targets at info, for its 'serving gRPC' line; the bridges on stderr, 'bridge.py: serving addr=...').
start_bg sandbox env RUST_LOG=warn "$target/kgen-gateway" sandbox --listen 127.0.0.1:0
upstream=$started_pid
upstream_addr=$(wait_announced sandbox 'fake KGeN upstream (sandbox) listening' "$upstream")
start_bg gateway env KGEN_CLIENT_SECRET=sandbox-secret RUST_LOG="$(announcing_filter warn)" "$target/kgen-gateway" \
  --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --upstream-url "http://$upstream_addr" --client-id sandbox-client \
  --max-concurrent-upstream 10000
gateway=$started_pid
gateway_addr=$(wait_announced gateway 'kgen-gateway serving gRPC' "$gateway")
bridge_env=(KGEN_UPSTREAM_URL="http://$upstream_addr" KGEN_CLIENT_ID=sandbox-client
  KGEN_CLIENT_SECRET=sandbox-secret)
start_bg python env "${bridge_env[@]}" "$py_dir/.venv/bin/python" "$py_dir/bridge.py" --port 0
python_bridge=$started_pid
python_addr=$(wait_announced python 'bridge.py: serving' "$python_bridge" 30)
start_bg node env "${bridge_env[@]}" node "$node_dir/bridge.js" --port 0
node_bridge=$started_pid
node_addr=$(wait_announced node 'bridge.js: serving' "$node_bridge" 30)
echo "== processes: sandbox pid $upstream, gateway pid $gateway, python bridge pid $python_bridge ($(head -n 1 "$work/python.log")), node bridge pid $node_bridge"

echo "== checks: every server's answers (one fresh user each, then one user shared, 429, empty user_id)"
cat >"$work/check.py" <<'EOF'
import calendar, os, sys, time
sys.path.insert(0, os.environ["STUBS"])
import grpc
from kgen.session.v1 import session_pb2, session_pb2_grpc

targets = [arg.split("=", 1) for arg in sys.argv[2:]]  # NAME=HOST:PORT, the gateway first
suffix = sys.argv[1]
failures = 0

def check(ok, what):
    global failures
    print(("  PASS " if ok else "  FAIL ") + what)
    failures += not ok

def call(addr, user_id, timeout=10):
    with grpc.insecure_channel(addr) as channel:
        stub = session_pb2_grpc.SessionServiceStub(channel)
        try:
            return stub.CreateSession(session_pb2.CreateSessionRequest(user_id=user_id), timeout=timeout), grpc.StatusCode.OK
        except grpc.RpcError as e:
            return None, e.code()

def expected_time(raw):  # "2024-08-20 08:32:13.025599965 +0000 UTC", as the sandbox writes it
    seconds = calendar.timegm(time.strptime(raw[:19], "%Y-%m-%d %H:%M:%S"))
    return seconds, int(raw[20:29])

DETERMINISTIC = ("user_id", "third_party_client_id", "third_party_client_name", "namespaced_third_party_user_id",
                 "wallet_address", "level", "rank", "name", "email", "linked_phone", "date_joined")
shared = f"bridge-check-{suffix}-shared"
reference = None
for name, addr in targets:
    user = f"bridge-check-{suffix}-{name}"
    first, code = call(addr, user)
    check(code == grpc.StatusCode.OK and first is not None and first.session_id != "",
          f"{name}: CreateSession({user!r}) is OK with a session id ({code.name})")
    if first is None:
        continue
    second, _ = call(addr, user)
    check(first.is_new_user is True and second is not None and second.is_new_user is False,
          f"{name}: is_new_user true on the first call, false on the second")
    check(first.HasField("session_started_at")
          and (first.session_started_at.seconds, first.session_started_at.nanos) == expected_time(first.session_start_time),
          f"{name}: session_started_at {first.session_started_at.seconds}.{first.session_started_at.nanos:09d}"
          f" == session_start_time {first.session_start_time!r}")
    check(abs(first.session_started_at.seconds - time.time()) < 60, f"{name}: session_started_at is about now")
    check(not first.HasField("indigg_id"), f"{name}: indigg_id unset (the sandbox sends null)")
    check(first.access_token.count(".") == 2 and first.refresh_token.count(".") == 2, f"{name}: tokens are JWT-shaped")
    session, code = call(addr, shared)
    if session is None:
        check(False, f"{name}: shared user answered {code.name}")
        continue
    if reference is None:
        reference = session
        check(session.is_new_user is True, f"{name}: shared user is new on its first call")
        print(f"  {name}: " + ", ".join(f"{f}={getattr(session, f)!r}" for f in ("user_id", "wallet_address", "level", "rank", "namespaced_third_party_user_id", "is_new_user")))
    else:
        same = all(getattr(session, f) == getattr(reference, f) for f in DETERMINISTIC)
        check(same, f"{name}: shared user's {', '.join(DETERMINISTIC)} equal the gateway's")
        check(session.is_new_user is False, f"{name}: shared user is not new after the gateway's call")
        check(abs(session.session_started_at.seconds - reference.session_started_at.seconds) < 60,
              f"{name}: session_started_at within a minute of the gateway's")
        print(f"  {name}: " + ", ".join(f"{f}={getattr(session, f)!r}" for f in ("user_id", "wallet_address", "level", "rank", "namespaced_third_party_user_id", "is_new_user")))
    _, code = call(addr, "fault:status:429")
    check(code == grpc.StatusCode.RESOURCE_EXHAUSTED, f"{name}: fault:status:429 -> {code.name}")
    _, code = call(addr, "")
    check(code == grpc.StatusCode.INVALID_ARGUMENT, f"{name}: empty user_id -> {code.name}")
    _, code = call(addr, "fault:delay:2000", timeout=0.3)
    check(code == grpc.StatusCode.DEADLINE_EXCEEDED, f"{name}: 300 ms deadline, 2 s upstream delay -> {code.name}")
print(f"  checks: {failures} failed")
sys.exit(1 if failures else 0)
EOF
suffix=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
STUBS="$py_dir/gen" "$py_dir/.venv/bin/python" "$work/check.py" "$suffix" "gateway=$gateway_addr" \
  "python=$python_addr" "node=$node_addr" ||
  { echo "bench-bridges: a server answered wrongly; no timed runs" >&2; exit 1; }

echo "== RSS idle KiB: gateway $(rss_kib "$gateway"), python bridge $(rss_kib "$python_bridge"), node bridge $(rss_kib "$node_bridge")"
echo "== load: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) on $(nproc) cores"
dirty=$(git -C "$root" status --porcelain -- src Cargo.toml Cargo.lock build.rs 2>/dev/null | wc -l)
echo "== gateway built from $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$([ "$dirty" = 0 ] || echo " + uncommitted changes in $dirty files")"
# Runs a command and then reports how much CPU the rest of the machine used meanwhile (other builds, tests…):
# /proc/stat's busy time minus the processes under test and the command itself. Usage: measure.py PID... -- CMD...
cat >"$work/measure.py" <<'EOF'
import os, resource, subprocess, sys, time
split = sys.argv.index("--")
pids, cmd = sys.argv[1:split], sys.argv[split + 1:]
hz = os.sysconf("SC_CLK_TCK")
def busy():
    ticks = [int(v) for v in open("/proc/stat").readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / hz  # all but idle and iowait
def cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / hz
start, wall, before = busy(), time.monotonic(), [cpu(p) for p in pids]
status = subprocess.run(cmd).returncode
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
ours = sum(cpu(p) - b for p, b in zip(pids, before)) + usage.ru_utime + usage.ru_stime
total, wall = busy() - start, time.monotonic() - wall
print(f"  machine: {total:.2f} CPU-s busy in {wall:.1f} s (warm-up included) of {os.cpu_count() * wall:.1f} available;"
      f" processes under test and loadgen {ours:.2f}; other processes {max(total - ours, 0):.2f} CPU-s")
sys.exit(status)
EOF
common=(--scenario gateway --duration "$duration" --concurrency "$concurrency")
for run in "gateway $gateway_addr $gateway" "python $python_addr $python_bridge" "node $node_addr $node_bridge"; do
  read -r name addr pid <<<"$run"
  echo "== $name: gRPC CreateSession through the $name to the same upstream"
  python3 "$work/measure.py" "$pid" "$upstream" -- "$target/examples/loadgen" "${common[@]}" \
    --target "$addr" --pid "$name=$pid" --pid "upstream=$upstream" | tee "$work/$name.out"
done
echo "== RSS after KiB: gateway $(rss_kib "$gateway"), python bridge $(rss_kib "$python_bridge"), node bridge $(rss_kib "$node_bridge")"

echo "== summary (closed loop, concurrency $concurrency, ${duration} s each; bridges single-process, gateway on all $(nproc) cores)"
python3 - "$work" <<'EOF'
import re, sys
work = sys.argv[1]
rows, bad = {}, False
for name in ("gateway", "python", "node"):
    text = open(f"{work}/{name}.out", encoding="utf-8").read()
    head = re.search(r"= (\d+) calls/s; latency µs p50 (\d+) p90 \d+ p99 (\d+) .*?; ok (\d+), errors (\{.*?\})", text)
    cpu = dict(re.findall(r"cpu (\S+)(?: itself)? \(pid \d+\): [\d.]+ s over the run = ([\d.]+) µs per call", text))
    if head is None:
        print(f"bench-bridges: cannot read loadgen's output for {name}", file=sys.stderr)
        sys.exit(1)
    rate, p50, p99, ok, errors = head.groups()
    bad |= errors != "{}"
    other = re.search(r"other processes ([\d.]+) CPU-s", text)
    rows[name] = (int(rate), p50, p99, errors, cpu.get(name, "?"), cpu.get("upstream", "?"), cpu.get("loadgen", "?"),
                  other.group(1) if other else "?")
print(f"| {'server':<8} | {'calls/s':>8} | {'p50 µs':>7} | {'p99 µs':>7} | {'errors':<8} | {'server CPU µs/call':>18} | {'upstream µs/call':>16} | {'loadgen µs/call':>15} | {'other CPU-s':>11} |")
print(f"|{'-'*10}|{'-'*10}|{'-'*9}|{'-'*9}|{'-'*10}|{'-'*20}|{'-'*18}|{'-'*17}|{'-'*13}|")
for name, (rate, p50, p99, errors, own, up, lg, other) in rows.items():
    print(f"| {name:<8} | {rate:>8,} | {p50:>7} | {p99:>7} | {errors:<8} | {own:>18} | {up:>16} | {lg:>15} | {other:>11} |")
print("other CPU-s: CPU time used meanwhile by processes outside the benchmark (run + warm-up); well above 0, the run was disturbed")
gw = rows["gateway"][0]
for name, target in (("python", 10), ("node", 3)):
    ratio = gw / rows[name][0] if rows[name][0] else float("inf")
    verdict = "met" if ratio >= target else "missed"
    print(f"gateway/{name}: {ratio:.2f}x (target >= {target}x: {verdict})")
if bad:
    print("bench-bridges: a timed run had errors; its figures are not comparable", file=sys.stderr)
    sys.exit(1)
EOF
