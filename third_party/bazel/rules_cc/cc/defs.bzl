"""Offline stub of @rules_cc//cc:defs.bzl: the native Bazel 4.2 rules under their usual names.

Bazel's embedded @bazel_tools BUILD files load these symbols; the real rules_cc 0.0.x macros are
thin wrappers around the same native rules, so re-exporting them is equivalent for this repo.
"""

cc_binary = native.cc_binary
cc_import = native.cc_import
cc_library = native.cc_library
cc_proto_library = native.cc_proto_library
cc_test = native.cc_test
cc_toolchain = native.cc_toolchain
cc_toolchain_suite = native.cc_toolchain_suite
fdo_prefetch_hints = native.fdo_prefetch_hints
fdo_profile = native.fdo_profile
objc_import = native.objc_import
objc_library = native.objc_library
