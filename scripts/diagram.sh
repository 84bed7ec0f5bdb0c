#!/usr/bin/env bash
# Renders the README's architecture diagram, docs/architecture.dot, to docs/images/architecture.svg with the pinned
# WebAssembly Graphviz (@viz-js/viz in tools/package-lock.json, installed by scripts/tools.sh; no system Graphviz).
#
#   scripts/diagram.sh            render and write docs/images/architecture.svg (commit it with the .dot)
#   scripts/diagram.sh --check    render to a scratch file and fail if the committed SVG differs (CI: a stale image)
#
# The render is deterministic for one Graphviz build, so the check compares bytes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source_dot="$root/docs/architecture.dot"
svg="$root/docs/images/architecture.svg"

check=0
case ${1:-} in
  "") ;;
  --check) check=1 ;;
  *)
    echo "usage: scripts/diagram.sh [--check]" >&2
    exit 2
    ;;
esac

tools_path=$("$root/scripts/tools.sh") # an assignment, so that a failed install stops the script
eval "$tools_path"

fresh=$(mktemp "${TMPDIR:-/tmp}/kgen-diagram.XXXXXX")
trap 'rm -f "$fresh"' EXIT
node "$root/tools/render-dot.mjs" <"$source_dot" >"$fresh"

if [ "$check" -eq 1 ]; then
  if cmp -s "$fresh" "$svg"; then
    echo "diagram: docs/images/architecture.svg is a fresh render of docs/architecture.dot"
    exit 0
  fi
  echo "diagram: docs/images/architecture.svg is stale or missing: run scripts/diagram.sh and commit the SVG" >&2
  diff -u "$svg" "$fresh" 2>&1 | head -n 40 >&2 || true
  exit 1
fi
mkdir -p "$(dirname "$svg")"
cp "$fresh" "$svg"
echo "diagram: wrote docs/images/architecture.svg"
