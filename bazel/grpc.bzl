"""cc_grpc_library: runs Debian's protoc and grpc_cpp_plugin over one .proto
file (Bazel's native proto_library would want a protobuf source repository)."""

def cc_grpc_library(name, src, visibility = None):
    base = src[:-len(".proto")]
    outs = [base + s for s in [".pb.h", ".pb.cc", ".grpc.pb.h", ".grpc.pb.cc"]]
    native.genrule(
        name = name + "_gen",
        srcs = [src],
        outs = outs,
        cmd = " ".join([
            "/usr/bin/protoc",
            "--proto_path=.",
            "--cpp_out=$(GENDIR)",
            "--grpc_out=$(GENDIR)",
            "--plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin",
            "$(location %s)" % src,
        ]),
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        deps = ["//third_party:grpc"],
        visibility = visibility,
    )
