#!/usr/bin/env bash
# Runs the Go interop checks (cmd/interop) against a kgen-gateway started with --sandbox:
#
#   examples/go/run-interop.sh --target HOST:PORT [--user-id ID] [--expect-client-name NAME]
#   examples/go/run-interop.sh --build-only     # everything but the run: then bin/interop ARGS...
#
# The arguments go to the program unchanged. Before that it installs what it needs through the repository and
# nothing system-wide: buf (tools/package-lock.json, `npm ci`) and the code generators protoc-gen-go and
# protoc-gen-go-grpc (pinned in tools/go, installed into tools/bin by scripts/go-tools.sh) via generate.sh, which
# writes the stubs to gen/; then `go mod download` (the versions of go.mod and go.sum, checked) and `go build` into
# bin/ (git-ignored).
# Go keeps modules and compiled packages in its default caches (`go env GOMODCACHE GOCACHE`, ~/go/pkg/mod and
# ~/.cache/go-build), shared by every clone on the machine: after a first run nothing is downloaded again.
# Exit status: the program's (0 when every case passed, 1 when one failed, 2 for bad usage), or 1 when a step
# before it failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

command -v go >/dev/null || { echo "run-interop.sh: go is not installed (Go 1.26 is needed)" >&2; exit 1; }
"$here/generate.sh" >/dev/null
cd "$here"
go mod download
go build -o bin/ ./cmd/interop
if [ "${1:-}" = --build-only ]; then
  echo "run-interop.sh: built $here/bin/interop"
  exit 0
fi
exec "$here/bin/interop" "$@"
