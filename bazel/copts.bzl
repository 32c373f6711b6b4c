"""Compiler options for lockd's own C++ code (generated code is exempt)."""

LOCKD_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
]
