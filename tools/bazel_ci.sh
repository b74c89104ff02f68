#!/usr/bin/env bash
# Bazel smoke check for CI (docs/bazel.md): installs Debian's bazel-bootstrap if missing, then runs
# the fast Bazel py_tests fully offline. Needs the project venv (`make install`) and root (apt).
# Usage: tools/bazel_ci.sh [bazel test arguments, replacing the default //:test_metrics //:test_features]
set -euo pipefail

cd "$(dirname "$0")/.."
start=$(date +%s)

if ! command -v bazel >/dev/null 2>&1; then
  echo "bazel_ci: installing bazel-bootstrap (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq bazel-bootstrap >/dev/null
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "bazel_ci: FAIL: .venv/bin/python missing; run 'make install' first" >&2
  exit 1
fi

targets=(//:test_metrics //:test_features)
if [[ $# -gt 0 ]]; then
  targets=("$@")
fi

status=0
# --nocache_test_results: the venv is not a Bazel input, so a cached PASS could hide a change
# made by `pip install`; always run the tests for real.
bazel test --test_output=errors --nocache_test_results "${targets[@]}" || status=$?

elapsed=$(( $(date +%s) - start ))
if [[ $status -eq 0 ]]; then
  echo "bazel_ci: OK: bazel test ${targets[*]} passed offline (${elapsed}s)"
else
  echo "bazel_ci: FAIL: bazel test ${targets[*]} exited with ${status} (${elapsed}s)" >&2
fi
exit $status
