#!/usr/bin/env bash
# Installs the gRPC ecosystem's Go tools, at pinned versions, into tools/bin (git-ignored) with `GOBIN`:
#
#   scripts/go-tools.sh [TOOL...]        # default: grpcurl grpc-health-probe ghz h2spec
#   eval "$(scripts/go-tools.sh | tail -n 1)"   # the last line is `export PATH=<repo>/tools/bin:$PATH`
#
# TOOL is one of the names below; examples/go/run-interop.sh asks for protoc-gen-go and protoc-gen-go-grpc (the
# code generators of examples/go) the same way, so every Go tool's version is pinned here and nowhere else.
# A tool already in tools/bin at its pinned version is left alone (`go version -m` tells), so a second run costs
# well under a second. Go keeps what it downloads and compiles in its default places (the module cache
# `go env GOMODCACHE`, normally ~/go/pkg/mod, and the build cache ~/.cache/go-build), shared by every clone on
# the machine: after the first run an install needs no network. Needs Go 1.26 (`go version`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/tools/bin"

# name | package (go install path) | module | version [| pinning module, a folder of the repo]
pins=(
  "grpcurl|github.com/fullstorydev/grpcurl/cmd/grpcurl|github.com/fullstorydev/grpcurl|v1.9.4"
  "grpc-health-probe|github.com/grpc-ecosystem/grpc-health-probe|github.com/grpc-ecosystem/grpc-health-probe|v0.4.62"
  "ghz|github.com/bojand/ghz/cmd/ghz|github.com/bojand/ghz|v0.120.0"
  # h2spec's last release predates Go modules (hence +incompatible): tools/h2spec/go.mod and go.sum pin it and
  # its dependencies, and it is installed from there (`go install @version` would take their newest that day).
  "h2spec|github.com/summerwind/h2spec/cmd/h2spec|github.com/summerwind/h2spec|v2.2.1+incompatible|tools/h2spec"
  # The code generators of examples/go; protoc-gen-go's version matches google.golang.org/protobuf there.
  "protoc-gen-go|google.golang.org/protobuf/cmd/protoc-gen-go|google.golang.org/protobuf|v1.36.12"
  "protoc-gen-go-grpc|google.golang.org/grpc/cmd/protoc-gen-go-grpc|google.golang.org/grpc/cmd/protoc-gen-go-grpc|v1.6.2"
)
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
for tool in "$@"; do
  pin=""
  for p in "${pins[@]}"; do
    [ "${p%%|*}" = "$tool" ] && pin=$p
  done
  [ -n "$pin" ] || die "unknown tool '$tool' (known: $(printf '%s ' "${pins[@]%%|*}"))"
  IFS='|' read -r name package module version pinned_by <<<"$pin"
  if [ "$(built_version "$bin/$name" "$module")" = "$version" ]; then
    echo "go-tools: $name $version already in tools/bin"
    continue
  fi
  started=$SECONDS
  if [ -n "$pinned_by" ]; then
    (cd "$root/$pinned_by" && GOBIN="$bin" go install "$package") ||
      die "go install $package (pinned by $pinned_by/go.mod) failed"
  else
    GOBIN="$bin" go install "$package@$version" || die "go install $package@$version failed"
  fi
  echo "go-tools: installed $name $version in $((SECONDS - started))s"
done
echo "export PATH=$bin:\$PATH"
