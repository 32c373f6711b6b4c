"""bpf_skeleton: compiles one bpf/*.bpf.c file with clang and wraps the object
in a libbpf skeleton header, so binaries embed their BPF object and need no
path at run time."""

BPF_CFLAGS = [
    "-O2",
    "-g",
    "-target bpf",
    "-mcpu=v3",
    "-Wall",
    "-Werror",
    "-I.",
    "-I/usr/include/x86_64-linux-gnu",
]

def bpf_skeleton(name, src, hdrs = [], skeleton_name = None, visibility = None):
    """Declares `<name>` (a cc_library exposing `<name>.skel.h`) and `<name>.o`.

    Args:
      name: target name; also the skeleton's object name unless skeleton_name.
      src: the .bpf.c entry file.
      hdrs: headers the entry file includes (BPF libraries, the ABI header).
      skeleton_name: the identifier bpftool uses for the skeleton's functions.
      visibility: visibility of the cc_library.
    """
    obj = name + ".o"
    skel = name + ".skel.h"
    native.genrule(
        name = name + "_obj",
        srcs = [src] + hdrs,
        outs = [obj],
        cmd = "/usr/bin/clang %s -c $(location %s) -o $@" % (" ".join(BPF_CFLAGS), src),
    )
    native.genrule(
        name = name + "_skel",
        srcs = [obj],
        outs = [skel],
        cmd = "/usr/sbin/bpftool gen skeleton $(location %s) name %s > $@" % (obj, skeleton_name or name),
    )
    native.cc_library(
        name = name,
        hdrs = [skel],
        deps = ["//third_party:libbpf"],
        visibility = visibility,
    )
