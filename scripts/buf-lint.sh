#!/usr/bin/env bash
# Lints the contract with buf's STANDARD rules. buf comes pinned from npm (tools/package-lock.json) into
# tools/node_modules, installed by scripts/tools.sh; nothing is installed system-wide.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools_path=$("$root/scripts/tools.sh") # an assignment, so that a failed install stops the script
eval "$tools_path"
cd "$root/proto"
buf lint
echo "buf lint: proto/ passes the STANDARD rules"
