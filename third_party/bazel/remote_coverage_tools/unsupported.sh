#!/bin/sh
# Offline stub of Bazel's coverage tools: `bazel coverage` is not supported in this repo.
echo "remote_coverage_tools is an offline stub: bazel coverage is unsupported (docs/bazel.md)" >&2
exit 1
