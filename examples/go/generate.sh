#!/usr/bin/env bash
# Generates the Go stubs of kgen.session.v1 into gen/ (git-ignored; never committed) from ../../proto, with
# `buf generate` (buf pinned in tools/package-lock.json, installed by `npm ci` into tools/node_modules) and the
# local plugins protoc-gen-go, protoc-gen-go-grpc and protoc-gen-connect-go (pinned in tools/go, installed into
# tools/bin by scripts/go-tools.sh). No protoc is needed. Fast (about a second) once the tools are installed;
# run-interop.sh, run-connect-interop.sh and create-session.sh call it before every build, so the stubs never go
# stale.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if [ ! -x "$root/tools/node_modules/.bin/buf" ]; then
  (cd "$root/tools" && npm ci --no-audit --no-fund --loglevel=error)
fi
"$root/scripts/go-tools.sh" protoc-gen-go protoc-gen-go-grpc protoc-gen-connect-go >/dev/null

cd "$here"
rm -rf gen
PATH="$root/tools/bin:$PATH" "$root/tools/node_modules/.bin/buf" generate ../../proto \
  --template buf.gen.yaml --path ../../proto/kgen/session/v1/session.proto
echo "generate.sh: stubs written to $here/gen"
