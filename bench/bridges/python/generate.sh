#!/usr/bin/env bash
# Generates the Python stubs for kgen.session.v1 into gen/ (git-ignored) with grpcio-tools' bundled protoc, which
# also supplies google/protobuf/*.proto; protos vendored under proto/ (e.g. google/rpc/status.proto) are generated
# too. Run it with the interpreter that has requirements.txt installed: `PYTHON=.venv/bin/python ./generate.sh`
# (default: `python` on PATH).
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python}
rm -rf gen
mkdir -p gen
# Every .proto of the contract (kgen/session/v1/session.proto and whatever it vendors beside it, e.g. google/rpc/).
mapfile -t protos < <(cd ../../../proto && find . -name '*.proto' -printf '%P\n' | sort)
"$python" -m grpc_tools.protoc -I ../../../proto --python_out gen --grpc_python_out gen "${protos[@]}"
