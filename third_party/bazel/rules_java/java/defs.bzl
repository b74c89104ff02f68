"""Offline stub of @rules_java//java:defs.bzl: the native Bazel 4.2 rules under their usual names.

Only loaded by Bazel's embedded @bazel_tools BUILD files; this repo builds no Java.
"""

java_binary = native.java_binary
java_import = native.java_import
java_library = native.java_library
java_lite_proto_library = native.java_lite_proto_library
java_package_configuration = native.java_package_configuration
java_plugin = native.java_plugin
java_proto_library = native.java_proto_library
java_runtime = native.java_runtime
java_test = native.java_test
java_toolchain = native.java_toolchain
