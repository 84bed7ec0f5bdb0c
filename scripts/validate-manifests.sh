#!/usr/bin/env bash
# Validates the Kubernetes manifests in deploy/ (kubernetes.yaml, autoscaling.yaml, servicemonitor.yaml), with no
# cluster and no network once installed:
#   - every core-kind document against the Kubernetes JSON schema of a pinned version (default 1.30), strict: an
#     unknown or misspelt field fails (kubernetes-validate, which bundles the schemas);
#   - the ServiceMonitor against the schema of prometheus-operator 0.80.1's CRD, strict
#     (cloudcoil-models-prometheus-operator, models generated from that CRD);
#   - what the documents rely on in each other: selectors and labels, port names, the admin listener on the pod IP,
#     the autoscaler's target and CPU requests, terminationGracePeriodSeconds > drain delay + shutdown grace + 1 s;
#   - a self-test: broken copies (a misspelt field, a wrong port name, a short grace period...) are rejected.
# The checks are scripts/validate-manifests.py's; this script installs its tools and counts its lines.
#
#   scripts/validate-manifests.sh [--kubernetes 1.30] [--no-self-test] [FILE...]   (default: deploy/*.yaml)
#
# Tools: a venv in deploy/.venv (git-ignored) with deploy/requirements.txt (every version pinned), made on the first
# run and again only when requirements.txt changes (a stamp in the venv holds its hash): later runs need no network.
# Environment: PYTHON, the interpreter for the venv (default python3; 3.10 or later).
# Ends with "N passed, N failed"; exits non-zero if any check failed.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
lib_reports_checks=1

kubernetes=1.30
self_test=--self-test
files=()
while [ $# -gt 0 ]; do
  case $1 in
    --kubernetes) kubernetes=$2; shift 2 ;;
    --no-self-test) self_test=""; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "validate-manifests.sh: unknown option $1" >&2; exit 2 ;;
    *) files+=("$1"); shift ;;
  esac
done
[ ${#files[@]} -gt 0 ] || files=("$root"/deploy/*.yaml)

venv=$root/deploy/.venv
requirements=$root/deploy/requirements.txt
stamp=$venv/.requirements.sha256
want=$(sha256sum <"$requirements" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "== tools: deploy/.venv is up to date with deploy/requirements.txt (no install, no network)"
else
  echo "== tools: installing deploy/requirements.txt into deploy/.venv"
  started=$SECONDS
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements"
  printf '%s\n' "$want" >"$stamp"
  echo "   installed in $((SECONDS - started)) s"
fi

echo "== checks: ${files[*]#"$root"/} (Kubernetes $kubernetes)"
status=0
# shellcheck disable=SC2086 # $self_test is one flag or nothing
"$venv/bin/python" "$root/scripts/validate-manifests.py" --kubernetes "$kubernetes" $self_test "${files[@]}" \
  >"$work/checks.txt" || status=$?
cat "$work/checks.txt"
passed=$(grep -c '^PASS: ' "$work/checks.txt" || true)
failed=$(grep -c '^FAIL: ' "$work/checks.txt" || true)
checks_passed=$((checks_passed + passed))
checks_failed=$((checks_failed + failed))
# A crash (a traceback, no FAIL line) must not pass.
check "the validator ran to its end (exit status $status, $failed failed checks)" \
  test "$((status != 0))" -eq "$((failed != 0))"
finish
