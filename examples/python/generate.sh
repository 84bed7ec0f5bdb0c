#!/usr/bin/env bash
# Generates the Python stubs for kgen.session.v1 into gen/ (git-ignored) with grpcio-tools' bundled protoc,
# which also supplies google/protobuf/timestamp.proto. The contract's import of google/rpc/status.proto resolves to
# the copy vendored under ../../proto, but only kgen/session/v1/session.proto is generated: at run time the stubs
# import google.rpc.status_pb2 from googleapis-common-protos. Run it with the interpreter that has
# requirements.txt installed: `PYTHON=.venv/bin/python ./generate.sh` (default: `python` on PATH, e.g. an
# activated venv).
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python}
rm -rf gen
mkdir -p gen
"$python" -m grpc_tools.protoc -I ../../proto --python_out gen --grpc_python_out gen \
  kgen/session/v1/session.proto
echo "generate.sh: stubs written to $(pwd)/gen"
