#!/usr/bin/env bash
# One command for the example client: generates the stubs (generate.sh, which installs the pinned tools it needs
# into the repository on first use), builds cmd/create-session into bin/ and runs it with your arguments:
#
#   examples/go/create-session.sh --target 127.0.0.1:50051 --user-id FTC_User1 [--timeout 10s] [--ca-file ca.pem]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

command -v go >/dev/null || { echo "create-session.sh: go is not installed (Go 1.26 is needed)" >&2; exit 1; }
"$here/generate.sh" >/dev/null
cd "$here"
go build -o bin/ ./cmd/create-session
exec "$here/bin/create-session" "$@"
