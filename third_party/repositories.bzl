"""Repository rules that wire the system's libraries into Bazel without downloading anything.

Link flags come from pkg-config on the build machine; LibTorch is found through the Python
interpreter that has the PyPI torch wheel installed.
"""

def _run(ctx, args):
    result = ctx.execute(args)
    if result.return_code != 0:
        fail("command %s failed: %s" % (args, result.stderr))
    return result.stdout.strip()

def _pkg_config_impl(ctx):
    lines = ['package(default_visibility = ["//visibility:public"])', ""]
    for name, spec in ctx.attr.libraries.items():
        parts = spec.split(" ")
        modules = [p for p in parts if not p.startswith("-")]
        extra = [p for p in parts if p.startswith("-")]
        libs = _run(ctx, ["pkg-config", "--libs"] + modules).split(" ") if modules else []
        cflags = _run(ctx, ["pkg-config", "--cflags"] + modules).split(" ") if modules else []
        defines = [f[2:] for f in cflags if f.startswith("-D")]

        # Keep the first occurrence of each flag; pkg-config repeats abseil libraries many times.
        seen = {}
        linkopts = []
        for flag in extra + libs:
            if flag and flag not in seen:
                seen[flag] = True
                linkopts.append(flag)
        lines.append("cc_library(")
        lines.append("    name = %r," % name)
        lines.append("    linkopts = %r," % linkopts)
        lines.append("    defines = %r," % defines)
        lines.append(")")
        lines.append("")
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD", "\n".join(lines))

pkg_config_repository = repository_rule(
    implementation = _pkg_config_impl,
    attrs = {
        # target name -> "pkg-config modules and extra -l flags, space separated"
        "libraries": attr.string_dict(mandatory = True),
    },
    environ = ["PKG_CONFIG_PATH"],
    local = True,
)

_FIND_TORCH = """
import os, sys
try:
    import torch
except ImportError:
    sys.exit("torch is not installed for this interpreter: run scripts/setup.sh")
root = os.path.dirname(torch.__file__)
site = os.path.dirname(root)
print(root)
print(torch.__version__)
print(os.path.join(site, "nvidia"))
"""

def _torch_impl(ctx):
    python = ctx.os.environ.get("GAUNTLET_PYTHON", "python3")
    out = _run(ctx, [python, "-c", _FIND_TORCH]).split("\n")
    root, version, nvidia = out[0], out[1], out[2]
    # torch/include carries an old copy of protobuf's headers (include/google/protobuf) that would
    # shadow the system protobuf our generated code is compiled against; leave it out.
    for entry in ctx.path(root + "/include").readdir():
        if entry.basename != "google":
            ctx.symlink(entry, "include/" + entry.basename)
    ctx.symlink(root + "/lib", "lib")
    has_nvidia = ctx.path(nvidia + "/nccl/include/nccl.h").exists
    if has_nvidia:
        ctx.symlink(nvidia + "/nccl/include", "nccl_include")
        ctx.symlink(nvidia + "/cu13/include", "cuda_include")
    lib = root + "/lib"
    build = """package(default_visibility = ["//visibility:public"])

# torch {version} at {root}
cc_library(
    name = "headers",
    hdrs = glob(["include/**/*.h", "include/**/*.hpp", "include/**/*.cuh"]),
    includes = ["include", "include/torch/csrc/api/include"],
)

# CPU-only link: libtorch.so itself would pull in libtorch_cuda.
cc_library(
    name = "torch_cpu",
    deps = [":headers"],
    linkopts = ["-L{lib}", "-Wl,-rpath,{lib}", "-ltorch_cpu", "-lc10"],
)
""".format(version = version, root = root, lib = lib)
    if has_nvidia:
        build += """
cc_library(
    name = "cuda_headers",
    hdrs = glob(["nccl_include/**/*.h", "cuda_include/**/*.h", "cuda_include/**/*.hpp"], allow_empty = True),
    includes = ["nccl_include", "cuda_include"],
)

# CUDA link: --no-as-needed keeps libtorch_cuda so its CUDA backend registers at load time.
cc_library(
    name = "torch_cuda",
    deps = [":headers", ":cuda_headers"],
    defines = ["GAUNTLET_CUDA=1"],
    linkopts = [
        "-L{lib}",
        "-L{nvidia}/nccl/lib",
        "-L{nvidia}/cu13/lib",
        "-Wl,-rpath,{lib}",
        "-Wl,-rpath,{nvidia}/nccl/lib",
        "-Wl,-rpath,{nvidia}/cu13/lib",
        "-Wl,--no-as-needed",
        "-ltorch_cuda",
        "-lc10_cuda",
        "-ltorch",
        "-Wl,--as-needed",
        "-ltorch_cpu",
        "-lc10",
        "-l:libnccl.so.2",
        "-l:libcudart.so.13",
        "-Wl,--allow-shlib-undefined",
    ],
)
""".format(lib = lib, nvidia = nvidia)
    ctx.file("WORKSPACE", 'workspace(name = "torch")\n')
    ctx.file("BUILD", build)

torch_repository = repository_rule(
    implementation = _torch_impl,
    environ = ["GAUNTLET_PYTHON", "PATH"],
    local = True,
)
