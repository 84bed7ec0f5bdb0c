#!/usr/bin/env bash
# Generates the connect-es stubs into gen/ (git-ignored; never committed) with `buf generate` (buf pinned in
# tools/package-lock.json, installed into tools/node_modules by scripts/tools.sh) and the local plugin protoc-gen-es
# (pinned in package-lock.json, installed into node_modules by `npm ci`; run-interop.sh runs it first). No protoc
# is needed. Written:
#   gen/kgen/session/v1/session_pb.{js,d.ts}   the contract: its messages and SessionService (from ../../proto)
#   gen/google/rpc/status_pb.{js,d.ts}         google.rpc.Status, which the contract imports (from ../../proto)
#   gen/google/rpc/error_details_pb.{js,d.ts}  ErrorInfo, RetryInfo, BadRequest, ... (from ../node/protos/, vendored there)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

[ -x "$here/node_modules/.bin/protoc-gen-es" ] ||
  { echo "generate.sh: no node_modules/.bin/protoc-gen-es: run npm ci in $here first" >&2; exit 1; }
eval "$("$root/scripts/tools.sh")"

cd "$here"
rm -rf gen
export PATH="$here/node_modules/.bin:$PATH"
buf generate ../../proto --template buf.gen.yaml --path ../../proto/kgen/session/v1/session.proto
buf generate ../node/protos --template buf.gen.yaml --path ../node/protos/google/rpc/error_details.proto
echo "generate.sh: stubs written to $here/gen"
