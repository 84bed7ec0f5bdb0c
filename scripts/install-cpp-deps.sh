#!/usr/bin/env bash
# Installs what examples/cpp needs from Debian: gRPC C++ (headers, libraries, CMake and pkg-config files),
# protobuf (headers, library, protoc), grpc_cpp_plugin and the gRPC health proto.
#
#   scripts/install-cpp-deps.sh
#
# Idempotent: asks `dpkg -s` which packages are installed first and runs `apt-get update` and `apt-get install` only
# when one is missing, so a machine that has them all is left alone (and no network is used). Needs root, or sudo
# when a package is missing. Debian 12 ships gRPC 1.51 and protobuf 3.21; examples/cpp/README.md says what
# they provide and what the example vendors instead.
set -euo pipefail

packages=(
  cmake                  # the build (3.25 on Debian 12; the project needs 3.16)
  ninja-build            # the generator run-interop.sh uses
  g++                    # C++17
  pkg-config             # gRPCConfig.cmake finds RE2 through it
  libprotobuf-dev        # protobuf headers and libprotobuf; also google/protobuf/*.proto (any, duration, timestamp)
  protobuf-compiler      # protoc
  libgrpc++-dev          # grpc++ headers and libraries (grpc++, grpc++_reflection, ...), pulls libgrpc-dev
  protobuf-compiler-grpc # grpc_cpp_plugin
  grpc-proto             # grpc/health/v1/health.proto, in /usr/share/grpc-proto
)

missing=()
for package in "${packages[@]}"; do
  # `dpkg -s` also succeeds for a package that was removed but left its config files: check its Status line.
  if ! dpkg -s "$package" 2>/dev/null | grep -qx 'Status: install ok installed'; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-cpp-deps: all installed (${packages[*]})"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || {
    echo "install-cpp-deps: missing ${missing[*]}; run this script as root (or install sudo)" >&2
    exit 1
  }
  sudo=(sudo)
fi

echo "install-cpp-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
