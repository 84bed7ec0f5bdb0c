#!/usr/bin/env bash
# Installs the gRPC ecosystem's Go tools, at pinned versions, into tools/bin (git-ignored) with `GOBIN`:
#
#   scripts/go-tools.sh [TOOL...]        # default: grpcurl grpc-health-probe ghz h2spec
#   eval "$(scripts/go-tools.sh)"        # stdout is one line, `export PATH=<repo>/tools/bin:$PATH`; progress on stderr
#
# TOOL is a folder of tools/go: grpcurl, grpc-health-probe, ghz, h2spec, and the code generators of examples/go,
# protoc-gen-go, protoc-gen-go-grpc and protoc-gen-connect-go (examples/go/generate.sh asks for those three). Each
# folder is a small Go module whose go.mod and go.sum pin the tool and every module it is built from; `go install`
# runs there. (Not `go install PKG@VERSION`: that asks the module proxy about the module's newest version on every
# install, so it needs the network even when everything is cached, and for h2spec, whose release predates Go
# modules, it would take the dependencies at their newest.) To move a tool: `go get -tool PKG@VERSION && go mod tidy`
# in its folder.
#
# A tool already in tools/bin at its pinned version is left alone (`go version -m` tells), so a second run costs
# well under a second. Go keeps what it downloads and compiles in its default caches (`go env GOMODCACHE GOCACHE`,
# normally ~/go/pkg/mod and ~/.cache/go-build), shared by every clone on the machine: once they hold a tool's
# modules, installing it again (in a fresh clone too) needs no network. Needs Go 1.26 (`go version`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/tools/bin"
pins="$root/tools/go"
default_tools=(grpcurl grpc-health-probe ghz h2spec)

die() {
  printf 'go-tools: %s\n' "$*" >&2
  exit 1
}

command -v go >/dev/null || die "go is not installed (Go 1.26 is needed)"
[ $# -gt 0 ] || set -- "${default_tools[@]}"

# The module version a Go binary was built from, or nothing.
built_version() {
  go version -m "$1" 2>/dev/null | awk -v mod="$2" '$1 == "mod" && $2 == mod { print $3; exit }'
}

mkdir -p "$bin"
for name in "$@"; do
  dir="$pins/$name"
  [ -f "$dir/go.mod" ] || die "unknown tool '$name' (known: $(cd "$pins" && echo */ | tr -d /))"
  # The tool's package (its `tool` line), its module and that module's pinned version (its `require` line).
  package=$(awk '$1 == "tool" { print $2; exit }' "$dir/go.mod")
  [ -n "$package" ] || die "$dir/go.mod has no tool line"
  read -r module version < <(awk -v pkg="$package" '
    { name = ($1 == "require") ? $2 : $1; ver = ($1 == "require") ? $3 : $2 }
    ver ~ /^v[0-9]/ && (pkg == name || index(pkg, name "/") == 1) && length(name) > length(best) { best = name; bestv = ver }
    END { if (best != "") print best, bestv }' "$dir/go.mod")
  [ -n "${version:-}" ] || die "$dir/go.mod requires no module for $package"
  if [ "$(built_version "$bin/$name" "$module")" = "$version" ]; then
    echo "go-tools: $name $version already in tools/bin" >&2
    continue
  fi
  started=$SECONDS
  (cd "$dir" && GOBIN="$bin" go install "$package") || die "go install $package (pinned in $dir/go.mod) failed"
  [ -x "$bin/$name" ] || die "go install $package wrote no $bin/$name"
  echo "go-tools: installed $name $version in $((SECONDS - started))s" >&2
done
echo "export PATH=$bin:\$PATH"
