#!/usr/bin/env bash
# Runs the connect-es interop checks (interop.js) against a kgen-gateway started with --sandbox, over the Connect
# protocol its gRPC port serves:
#
#   examples/connect-node/run-interop.sh --target HOST:PORT [--user-id ID] [--expect-client-name NAME]
#   examples/connect-node/run-interop.sh --build-only     # everything but the run: then node interop.js ARGS...
#
# The arguments go to interop.js unchanged. Before that it installs what it needs through the repository and nothing
# system-wide: `npm ci` (the versions of package-lock.json; npm's cache kept in .npm-cache, git-ignored) into
# node_modules, then generate.sh, which writes the stubs to gen/ (git-ignored) with the pinned buf of tools/ and
# protoc-gen-es from node_modules. Plain JavaScript: nothing is compiled.
# Exit status: interop.js's (0 when every case passed, 1 when one failed, 2 for bad usage), or 1 when a step
# before it failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "run-interop.sh: $tool is not installed (Node.js 20 or later)" >&2; exit 1; }
done
cd "$here"
npm ci --no-audit --no-fund --loglevel=error --cache "$here/.npm-cache"
"$here/generate.sh" >/dev/null
if [ "${1:-}" = --build-only ]; then
  echo "run-interop.sh: installed $here/node_modules, generated $here/gen"
  exit 0
fi
exec node "$here/interop.js" "$@"
