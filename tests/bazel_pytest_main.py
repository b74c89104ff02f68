"""Runs one pytest file as a Bazel py_test (see the py_test targets in //:BUILD, docs/bazel.md).

Usage (what Bazel runs): bazel_pytest_main.py tests/test_x.py [extra pytest args...]
The working directory is the runfiles copy of the workspace, which holds pytest.ini and
tests/conftest.py; caches go to $TEST_TMPDIR instead of the (read-only) runfiles tree.
"""

import os
import sys

import pytest


def main(argv):
  if len(argv) < 2:
    print(f"usage: {argv[0]} TEST_FILE [PYTEST_ARGS...]", file=sys.stderr)
    return 2
  tmp = os.environ.get("TEST_TMPDIR")
  if tmp:  # Hypothesis otherwise creates ./.hypothesis in the runfiles tree.
    os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tmp, "hypothesis"))
  args = [argv[1], "-q", "-m", "not slow", "-p", "no:cacheprovider"]
  xml = os.environ.get("XML_OUTPUT_FILE")
  if xml:  # per-test-case results in bazel-testlogs/<target>/test.xml
    args.append(f"--junitxml={xml}")
  return int(pytest.main(args + list(argv[2:])))


if __name__ == "__main__":
  sys.exit(main(sys.argv))
