#!/usr/bin/env bash
# The C++ interop checks in one command: installs the Debian packages (scripts/install-cpp-deps.sh), configures
# and builds examples/cpp/build (build.sh), then runs the interop program with the arguments given.
#
#   examples/cpp/run-interop.sh --target HOST:PORT [--user-id ID] [--expect-client-name NAME]
#
# The target is a kgen-gateway started with --sandbox. Prints one `[cpp] PASS <case>` / `[cpp] FAIL <case>: <why>`
# line per case and `[cpp] N passed, N failed`; exits 1 when a case failed, 2 for bad usage, and non-zero without
# a case line when the install or the build failed (their output is on stderr).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/build.sh"
exec "$here/build/interop" "$@"
