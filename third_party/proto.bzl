"""C++ protobuf + gRPC code generation with the system protoc and grpc_cpp_plugin."""

def gauntlet_cc_proto(name, srcs, deps = [], grpc = True):
    """Generates <src>.pb.{h,cc} (and .grpc.pb.{h,cc}) for srcs under proto/ and a cc_library."""
    stems = [s[:-len(".proto")] for s in srcs]
    outs = []
    for stem in stems:
        outs += [stem + ".pb.h", stem + ".pb.cc"]
        if grpc:
            outs += [stem + ".grpc.pb.h", stem + ".grpc.pb.cc"]
    plugin = " --grpc_out=$(GENDIR)/proto --plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin)" if grpc else ""
    native.genrule(
        name = name + "_gen",
        srcs = srcs + [d + "_srcs" for d in deps],
        outs = outs,
        cmd = "protoc -Iproto --cpp_out=$(GENDIR)/proto" + plugin + " " +
              " ".join(["proto/" + s for s in srcs]),
    )
    native.filegroup(name = name + "_srcs", srcs = srcs + [d + "_srcs" for d in deps])
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        includes = ["."],
        deps = deps + ["@system//:grpc"],
    )
