#!/usr/bin/env bash
# Installs the repository's pinned developer tools into tools/node_modules and prints the one line that puts them
# on PATH:
#
#   eval "$(scripts/tools.sh)"      # then: buf curl …, buf lint …
#
# The tools are npm packages pinned in tools/package.json and tools/package-lock.json: buf (@bufbuild/buf, for
# `buf lint`, `buf breaking` and `buf curl`) and Graphviz compiled to WebAssembly (@viz-js/viz, for
# scripts/diagram.sh). Nothing is installed system-wide. `npm ci` runs when tools/node_modules is missing or stale
# (installed from another package-lock.json than the one checked out); otherwise this is instant. npm's output goes
# to stderr: stdout is only the `export PATH=…` line. Needs node and npm.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/tools"
stamp="$tools/node_modules/.kgen-tools-lock.sha256"

command -v npm >/dev/null || {
  echo "tools.sh: npm is not installed (node and npm install the pinned tools into tools/node_modules)" >&2
  exit 1
}
lock_digest=$(sha256sum "$tools/package-lock.json" | cut -d' ' -f1)
if [ ! -d "$tools/node_modules" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$lock_digest" ]; then
  echo "tools.sh: npm ci in tools/ (pinned by tools/package-lock.json)" >&2
  (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error) >&2
  printf '%s\n' "$lock_digest" >"$stamp"
fi

# Inside double quotes only \ $ ` and " are special: escape them, so any checkout path works.
bin="$tools/node_modules/.bin"
bin=${bin//\\/\\\\}
bin=${bin//\$/\\\$}
bin=${bin//\`/\\\`}
bin=${bin//\"/\\\"}
# shellcheck disable=SC2016 # $PATH is for the eval, not for this script
printf 'export PATH="%s:$PATH"\n' "$bin"
