#!/usr/bin/env bash
# Builds the C++ example in examples/cpp/build (git-ignored): installs the Debian packages it needs with
# scripts/install-cpp-deps.sh (nothing happens when they are there), configures with CMake and Ninja the first
# time, and builds `create_session` and `interop` (ninja rebuilds only what changed, and re-runs CMake itself when
# CMakeLists.txt changes). All its output goes to stderr, so the scripts that run a program after it keep their
# stdout for that program.
#
#   examples/cpp/build.sh
#
# Environment: CMAKE_BUILD_PARALLEL_LEVEL (compile jobs, default 2), CMAKE_BUILD_TYPE (for the first configure,
# default RelWithDebInfo).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$here/build"

"$root/scripts/install-cpp-deps.sh" >&2
if [ ! -f "$build/build.ninja" ]; then
  if [ -f "$build/CMakeCache.txt" ]; then
    echo "build.sh: $build was configured with another generator than Ninja; remove it and run again" >&2
    exit 1
  fi
  cmake -S "$here" -B "$build" -G Ninja ${CMAKE_BUILD_TYPE:+"-DCMAKE_BUILD_TYPE=$CMAKE_BUILD_TYPE"} >&2
fi
cmake --build "$build" --parallel "${CMAKE_BUILD_PARALLEL_LEVEL:-2}" >&2
