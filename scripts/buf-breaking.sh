#!/usr/bin/env bash
# Fails when the contract changes incompatibly (buf's FILE rules: a renumbered, retyped or removed field, a
# renamed RPC, ...) against the proto as it stands on the previous commit (or on BUF_AGAINST_REF). buf comes pinned
# from npm, installed by scripts/tools.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
against=${BUF_AGAINST_REF:-HEAD~1}
if ! git rev-parse --verify --quiet "$against^{commit}" >/dev/null; then
  if [ "$(git rev-parse --is-shallow-repository)" = true ]; then
    git fetch --quiet --deepen=1 || true
  fi
  if ! git rev-parse --verify --quiet "$against^{commit}" >/dev/null; then
    echo "buf breaking: no commit $against to compare with (first commit): nothing to check"
    exit 0
  fi
fi
if ! git cat-file -e "$against:proto/buf.yaml" 2>/dev/null; then
  echo "buf breaking: $against has no proto/buf.yaml: nothing to compare with"
  exit 0
fi
tools_path=$("$root/scripts/tools.sh") # an assignment, so that a failed install stops the script
eval "$tools_path"
buf breaking proto --against ".git#ref=$against,subdir=proto"
echo "buf breaking: proto/ is wire- and source-compatible with $against"
