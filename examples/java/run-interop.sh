#!/usr/bin/env bash
# Builds the Java example with Maven and runs its interop checks against a gateway started with --sandbox:
#
#   examples/java/run-interop.sh --target 127.0.0.1:50051 [--user-id interop-java-<random>] [--expect-client-name N]
#
# Every argument is passed to io.kgen.gateway.example.Interop, which prints one `[java] PASS <case>` or
# `[java] FAIL <case>: <why>` line per case and `[java] N passed, N failed`, and exits 1 when a case failed (2 for
# bad usage). This script exits with that status, or 1 when the build fails.
#
# The build: `mvn -B -q compile` (stubs generated from ../../proto, classes and target/classpath.txt written), then a
# plain `java -cp` run, so Maven's JVM is not in the way of the checks' output or exit status. Maven's local
# repository is its default, ~/.m2/repository: shared with any other Maven build on the machine, and kept between
# runs on it (CI runs in a fresh clone on the same machine, where a repository inside the clone would start empty
# every time). Another one can be chosen with MAVEN_OPTS=-Dmaven.repo.local=DIR. The build runs offline (-o) first;
# only when Maven says an artifact has not been downloaded yet (the first run, or after a version in pom.xml
# changed) does it run again online. Environment: MVN (default mvn), JAVA (default java), MAVEN_OPTS.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mvn=${MVN:-mvn}
java=${JAVA:-java}
for tool in "$mvn" "$java"; do
  command -v "$tool" >/dev/null || { echo "run-interop.sh: $tool is not installed" >&2; exit 1; }
done

build_log=$(mktemp "${TMPDIR:-/tmp}/kgen-java-build.XXXXXX")
trap 'rm -f "$build_log"' EXIT

build() {
  "$mvn" -B -q "$@" -f "$here/pom.xml" compile >"$build_log" 2>&1
}

if ! build -o; then
  if grep -q -e 'in offline mode' -e 'has not been downloaded from it before' "$build_log"; then
    echo "run-interop.sh: first build with this Maven repository: downloading plugins, protoc and dependencies" >&2
    if ! build; then
      echo "run-interop.sh: the Maven build failed:" >&2
      cat "$build_log" >&2
      exit 1
    fi
  else
    echo "run-interop.sh: the Maven build failed:" >&2
    cat "$build_log" >&2
    exit 1
  fi
fi

classpath_file="$here/target/classpath.txt"
[ -s "$classpath_file" ] || { echo "run-interop.sh: the build wrote no $classpath_file" >&2; exit 1; }
exec "$java" -cp "$here/target/classes:$(cat "$classpath_file")" io.kgen.gateway.example.Interop "$@"
