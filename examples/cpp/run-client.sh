#!/usr/bin/env bash
# The C++ client in one command: installs the Debian packages (scripts/install-cpp-deps.sh), configures and builds
# examples/cpp/build (build.sh), then calls CreateSession and prints the session or the error.
#
#   examples/cpp/run-client.sh --target 127.0.0.1:50051 --user-id FTC_User1 [--timeout 10]
#
# Exit status: 0 on success, 1 when the call failed, 2 for bad usage (and non-zero when the build failed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/build.sh"
exec "$here/build/create_session" "$@"
