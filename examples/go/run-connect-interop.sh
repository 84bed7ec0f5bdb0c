#!/usr/bin/env bash
# Runs the connect-go interop checks (cmd/connect-interop) against a kgen-gateway started with --sandbox, over the
# Connect protocol on its gRPC port (plaintext: HTTP/1.1 and h2c):
#
#   examples/go/run-connect-interop.sh --target HOST:PORT [--user-id ID] [--expect-client-name NAME] [--verbose]
#   examples/go/run-connect-interop.sh --build-only     # everything but the run: then bin/connect-interop ARGS...
#
# The arguments go to the program unchanged. Before that it installs what it needs through the repository and
# nothing system-wide, as run-interop.sh does: buf (tools/package-lock.json, `npm ci`) and the code generators
# protoc-gen-go, protoc-gen-go-grpc and protoc-gen-connect-go (pinned in tools/go, installed into tools/bin by
# scripts/go-tools.sh) via generate.sh, which writes the stubs to gen/; then `go mod download` (the versions of
# go.mod and go.sum, checked) and `go build` into bin/ (git-ignored).
# Exit status: the program's (0 when every case passed, 1 when one failed, 2 for bad usage), or 1 when a step
# before it failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

command -v go >/dev/null || { echo "run-connect-interop.sh: go is not installed (Go 1.26 is needed)" >&2; exit 1; }
"$here/generate.sh" >/dev/null
cd "$here"
go mod download
go build -o bin/ ./cmd/connect-interop
if [ "${1:-}" = --build-only ]; then
  echo "run-connect-interop.sh: built $here/bin/connect-interop"
  exit 0
fi
exec "$here/bin/connect-interop" "$@"
