#!/usr/bin/env bash
# Interop check: the gateway's contract, driven by real generated clients in Python, Node.js, Go, Java, C++ and
# Rust over gRPC, and by connect-go and connect-es over the Connect protocol (HTTP/1.1 and HTTP/2).
#
#   scripts/interop.sh [--binary target/release/kgen-gateway]
#
# Builds kgen-gateway (`cargo build --locked --bin kgen-gateway`; honours CARGO_TARGET_DIR) unless --binary names
# one already built (CI passes its release binary, so no second build fills the disk), starts it with
# `--sandbox` on loopback port 0 (both listeners; the bound addresses are read from its JSON log), then runs
#   - examples/python/interop.py (venv in examples/python/.venv, created or reused; `pip install -r
#     requirements.txt`; stubs from generate.sh),
#   - examples/node/interop.js (`npm ci`; npm's cache kept in examples/node/.npm-cache),
#   - examples/go's interop program (grpc-go; `examples/go/run-interop.sh --build-only`: buf and the pinned
#     protoc-gen-go/protoc-gen-go-grpc of tools/go into tools/bin, stubs into examples/go/gen, `go mod download`,
#     `go build`; Go's default module and build caches),
#   - examples/java/run-interop.sh (Maven: `mvn -B -q compile`, offline after the first run, local repository
#     ~/.m2; then `java -cp` runs io.kgen.gateway.example.Interop),
#   - examples/cpp/run-interop.sh (Debian's gRPC 1.51 and protobuf 3.21 installed by scripts/install-cpp-deps.sh,
#     a no-op when present; built by examples/cpp/build.sh with CMake and Ninja in examples/cpp/build),
#   - examples/go's connect-interop program (connect-go; `examples/go/run-connect-interop.sh --build-only`, the same
#     module, stubs and caches as the grpc-go program, plus the pinned protoc-gen-connect-go of tools/go),
#   - examples/connect-node/interop.js (connect-es, @connectrpc/connect-node; `run-interop.sh --build-only`: `npm ci`
#     with its cache in examples/connect-node/.npm-cache, then protoc-gen-es stubs into examples/connect-node/gen),
#   - the Rust example twice: the success path, and a CreateSessions batch of three user ids, one invalid
#     (`cargo run --locked --example create_session`; needs the `[[example]] name = "create_session"` entry in
#     Cargo.toml; INTEROP_SKIP_RUST=1 skips it).
# Each client prints one `[lang] PASS|FAIL <case>` line per case; this script counts them, adds whether the gateway
# stopped with exit 0 on SIGTERM, and ends with the line `N passed, N failed`. Exit status: 0 when everything
# passed, 1 otherwise (also when the build, the installs or the gateway's start-up fail).
# Environment: CARGO_TARGET_DIR, INTEROP_SKIP_RUST=1, PYTHON (interpreter for the venv, default python3),
# INTEROP_EXPECT_CLIENT_NAME (the sandbox's third_party_client_name, default SANDBOX_SANDBOX_CLIENT).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

binary=""
py_dir="$root/examples/python"
node_dir="$root/examples/node"
java_dir="$root/examples/java"
cpp_dir="$root/examples/cpp"
skip_rust=${INTEROP_SKIP_RUST:-0}
gateway_log="$work/gateway.log"
addr=""
# A fresh user id per run and language, so is_new_user is true on each client's first call.
suffix=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')

say() { printf '== %s\n' "$*"; }
die() {
  printf 'interop: %s\n' "$*" >&2
  exit 1
}

# Called by scripts/lib.sh on exit, which then stops the gateway. (A gateway that failed to start has had its log
# shown by wait_announced already.)
at_exit() {
  if [ "$1" -ne 0 ] && [ "$lib_finished" = 0 ] && [ -n "$addr" ] && [ -s "$gateway_log" ]; then
    echo "interop: last lines of the gateway's log:" >&2
    tail -n 20 "$gateway_log" >&2
  fi
}

while [ $# -gt 0 ]; do
  case $1 in
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    *) die "unknown argument: $1 (usage: scripts/interop.sh [--binary PATH])" ;;
  esac
done

for tool in cargo node npm go java mvn "${PYTHON:-python3}"; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done

if [ "$skip_rust" != 1 ]; then
  # Fail before spending minutes on installs if the Rust example is not registered as a cargo example.
  examples=$(cd "$root" && cargo metadata --locked --no-deps --format-version 1 |
    "${PYTHON:-python3}" -c 'import json, sys
for p in json.load(sys.stdin)["packages"]:
    for t in p["targets"]:
        if "example" in t["kind"]:
            print(t["name"])')
  grep -qx create_session <<<"$examples" ||
    die "Cargo.toml has no example target \"create_session\"; add
    [[example]]
    name = \"create_session\"
    path = \"examples/rust/create_session.rs\"
to Cargo.toml, or set INTEROP_SKIP_RUST=1 to skip the Rust client"
fi

if [ -z "$binary" ]; then
  say "cargo build --locked --bin kgen-gateway"
  (cd "$root" && cargo build --locked --bin kgen-gateway)
  binary="$target_dir/debug/kgen-gateway"
fi
[ -x "$binary" ] || die "no gateway binary at $binary"
if [ "$skip_rust" != 1 ]; then
  say "cargo build --locked --example create_session"
  (cd "$root" && cargo build --locked --example create_session)
fi

say "python: venv, pip install -r requirements.txt, generate.sh"
if [ ! -x "$py_dir/.venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$py_dir/.venv"
fi
"$py_dir/.venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
  -r "$py_dir/requirements.txt"
PYTHON="$py_dir/.venv/bin/python" "$py_dir/generate.sh"

say "node: npm ci"
(cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error --cache "$node_dir/.npm-cache")

say "go: stubs, go mod download, go build (examples/go/run-interop.sh --build-only)"
"$root/examples/go/run-interop.sh" --build-only

say "cpp: scripts/install-cpp-deps.sh, cmake -G Ninja, build (examples/cpp/build.sh)"
"$cpp_dir/build.sh"

say "connect-go: stubs, go build (examples/go/run-connect-interop.sh --build-only)"
"$root/examples/go/run-connect-interop.sh" --build-only

say "connect-es: npm ci, stubs (examples/connect-node/run-interop.sh --build-only)"
"$root/examples/connect-node/run-interop.sh" --build-only

say "start kgen-gateway --sandbox"
# A clean environment for the gateway's own settings: every KGEN_* variable it could read is dropped.
unset_kgen=()
while IFS= read -r name; do
  unset_kgen+=(-u "$name")
done < <(compgen -e | grep '^KGEN_' || true)
start_bg gateway env ${unset_kgen[@]+"${unset_kgen[@]}"} RUST_LOG=info "$binary" --sandbox --listen 127.0.0.1:0 \
  --admin-listen 127.0.0.1:0 --log-format json
gateway_pid=$started_pid
addr=$(wait_announced gateway 'kgen-gateway serving gRPC' "$gateway_pid")
admin_addr=$(wait_announced gateway 'admin endpoints serving' "$gateway_pid")
echo "gateway pid $gateway_pid serving gRPC on $addr, admin on $admin_addr"

# Runs one client; counts its `[label] PASS` / `[label] FAIL` lines. A client that exits non-zero without
# reporting a failed case, or reports no case at all, counts as one failure.
run_suite() {
  local label=$1
  shift
  local out="$work/$label.out" rc=0 p f
  "$@" 2>&1 | tee "$out" || rc=$?
  p=$(grep -c "^\[$label\] PASS " "$out" || true)
  f=$(grep -c "^\[$label\] FAIL " "$out" || true)
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "[$label] FAIL exited with status $rc without reporting a failed case"
    f=1
  elif [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
    echo "[$label] FAIL reported no case"
    f=1
  fi
  checks_passed=$((checks_passed + p))
  checks_failed=$((checks_failed + f))
}

say "python interop"
run_suite python "$py_dir/.venv/bin/python" "$py_dir/interop.py" --target "$addr" --user-id "interop-py-$suffix"

say "node interop"
run_suite node node "$node_dir/interop.js" --target "$addr" --user-id "interop-node-$suffix"

say "go interop"
run_suite go "$root/examples/go/bin/interop" --target "$addr" --user-id "interop-go-$suffix"

say "java interop (examples/java/run-interop.sh: mvn compile, then java)"
run_suite java "$java_dir/run-interop.sh" --target "$addr" --user-id "interop-java-$suffix"

say "cpp interop"
run_suite cpp "$cpp_dir/run-interop.sh" --target "$addr" --user-id "interop-cpp-$suffix"

say "connect-go interop (Connect protocol, HTTP/1.1 and h2c)"
run_suite connect-go "$root/examples/go/bin/connect-interop" --target "$addr" --user-id "interop-connect-go-$suffix"

say "connect-es interop (Connect protocol, HTTP/1.1 and h2c)"
run_suite connect-es node "$root/examples/connect-node/interop.js" --target "$addr" \
  --user-id "interop-connect-es-$suffix"

if [ "$skip_rust" = 1 ]; then
  say "rust example: skipped (INTEROP_SKIP_RUST=1)"
else
  say "rust example (success path)"
  rust_user="interop-rust-$suffix"
  rust_out="$work/rust.out"
  rust_rc=0
  (cd "$root" && cargo run --locked --quiet --example create_session -- \
    --target "http://$addr" --user-id "$rust_user" --timeout 10) >"$rust_out" 2>&1 || rust_rc=$?
  sed 's/^/  /' "$rust_out"
  if [ "$rust_rc" -eq 0 ] &&
    grep -qx "user_id: \"$rust_user\"" "$rust_out" &&
    grep -qx 'is_new_user: true' "$rust_out" &&
    grep -qE '^session_id: "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"$' "$rust_out" &&
    grep -qE '^session_started_at: [0-9]{4}-[0-9]{2}-[0-9]{2}T' "$rust_out"; then
    echo "[rust] PASS success: create_session example (user_id, session_id, is_new_user, session_started_at)"
    checks_passed=$((checks_passed + 1))
  else
    echo "[rust] FAIL success: create_session example exited $rust_rc or printed an unexpected session"
    checks_failed=$((checks_failed + 1))
  fi

  say "rust example (CreateSessions batch)"
  batch_out="$work/rust-batch.out"
  batch_rc=0
  (cd "$root" && cargo run --locked --quiet --example create_session -- \
    --target "http://$addr" --user-id "$rust_user-b0" --user-id "" --user-id "$rust_user-b1" --timeout 10) \
    >"$batch_out" 2>&1 || batch_rc=$?
  sed 's/^/  /' "$batch_out"
  # Exit 1: the empty user id's item failed (the other two succeed; the stream itself ends OK).
  if [ "$batch_rc" -eq 1 ] &&
    [ "$(grep -c '^== answer for ' "$batch_out")" -eq 3 ] &&
    grep -qx "user_id: \"$rust_user-b0\"" "$batch_out" &&
    grep -qx "user_id: \"$rust_user-b1\"" "$batch_out" &&
    [ "$(grep -cx 'is_new_user: true' "$batch_out")" -eq 2 ] &&
    grep -A1 -x '== answer for ""' "$batch_out" | grep -q '^error: InvalidArgument: ' &&
    grep -q '^  ErrorInfo: reason=INVALID_USER_ID ' "$batch_out" &&
    grep -q '^  BadRequest: field=user_id ' "$batch_out"; then
    echo "[rust] PASS batch: create_session example streams 3 user ids (2 sessions, '' INVALID_ARGUMENT + BadRequest)"
    checks_passed=$((checks_passed + 1))
  else
    echo "[rust] FAIL batch: create_session example exited $batch_rc or printed unexpected answers"
    checks_failed=$((checks_failed + 1))
  fi
fi

say "stop the gateway (SIGTERM)"
gateway_rc=0
stop_bg "$gateway_pid" 30 || gateway_rc=$?
if [ "$gateway_rc" -eq 0 ]; then
  echo "[gateway] PASS stopped with exit status 0 on SIGTERM"
  checks_passed=$((checks_passed + 1))
else
  echo "[gateway] FAIL exited with status $gateway_rc on SIGTERM"
  checks_failed=$((checks_failed + 1))
fi

if [ "$checks_failed" -ne 0 ] && [ -s "$gateway_log" ]; then
  echo "interop: last lines of the gateway's log:"
  tail -n 20 "$gateway_log"
fi
finish
