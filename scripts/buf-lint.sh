#!/usr/bin/env bash
# Lints the contract with buf's STANDARD rules. buf comes pinned from npm (tools/package-lock.json) into
# tools/node_modules; nothing is installed system-wide.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$root/tools/node_modules/.bin/buf" ]; then
  (cd "$root/tools" && npm ci --no-audit --no-fund --loglevel=error)
fi
cd "$root/proto"
"$root/tools/node_modules/.bin/buf" lint
echo "buf lint: proto/ passes the STANDARD rules"
