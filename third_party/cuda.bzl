"""nvcc inside the Bazel build, without rules_cuda (not available offline).

cuda_repository exposes the CUDA toolkit found at $CUDA_HOME (default /usr/local/cuda) as
@cuda//:nvcc. The repository rule never fails: without a toolkit it defines no files, and only
--config=cuda builds reach the nvcc genrules, so a CPU-only machine never needs CUDA.

cuda_library compiles .cu files (plain CUDA, no torch headers) for sm_90 into a static archive and
wraps it in a cc_library that is empty unless //third_party:cuda_build is selected.
"""

def _cuda_repository_impl(ctx):
    home = ctx.os.environ.get("CUDA_HOME", "/usr/local/cuda")
    found = ctx.path(home + "/bin/nvcc").exists
    if found:
        ctx.symlink(home, "toolkit")
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD", """package(default_visibility = ["//visibility:public"])

# CUDA toolkit at {home} (nvcc {state})
filegroup(
    name = "nvcc",
    srcs = {srcs},
)
""".format(
        home = home,
        state = "found" if found else "NOT found: --config=cuda builds of .cu files will fail",
        srcs = repr(["toolkit/bin/nvcc"] if found else []),
    ))

cuda_repository = repository_rule(
    implementation = _cuda_repository_impl,
    environ = ["CUDA_HOME"],
    local = True,
)

# H100/H200: native sm_90 code plus compute_90 PTX so newer GPUs can JIT it.
_NVCC_FLAGS = " ".join([
    "-std=c++17",
    "-O3",
    "-gencode=arch=compute_90,code=sm_90",
    "-gencode=arch=compute_90,code=compute_90",
    "-Xcompiler=-fPIC",
    "-Xptxas=-warn-spills",
    "--expt-relaxed-constexpr",
])

def cuda_library(name, srcs, hdrs, deps = [], **kwargs):
    """A cc_library holding the nvcc-compiled srcs under --config=cuda, only hdrs otherwise.

    Every srcs file and every header it includes must be listed (srcs/hdrs); the .cu files may
    include only CUDA headers and each other's headers by workspace-relative path.
    """
    objs = []
    for src in srcs:
        obj = name + "_" + src.replace("/", "_").replace(".cu", ".o")
        native.genrule(
            name = obj.replace(".o", "_nvcc"),
            srcs = [src] + hdrs,
            outs = [obj],
            tools = ["@cuda//:nvcc"],
            cmd = "$(location @cuda//:nvcc) %s -I. -c $(location %s) -o $@" % (_NVCC_FLAGS, src),
            # `bazel build //...` in the CPU build must not run nvcc.
            tags = ["manual"],
        )
        objs.append(":" + obj)
    native.cc_library(
        name = name,
        srcs = select({
            "//third_party:cuda_build": objs,
            "//conditions:default": [],
        }),
        hdrs = hdrs,
        deps = deps,
        linkstatic = 1,
        alwayslink = 1,
        **kwargs
    )
