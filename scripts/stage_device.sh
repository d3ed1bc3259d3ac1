#!/usr/bin/env bash
# Builds the CUDA binaries here and stages them, with the Debian shared libraries the GPU machine
# lacks (gRPC, abseil, prometheus-cpp, yaml-cpp 0.7, ...), in .device/ for the device tool to carry.
# LibTorch, CUDA and NCCL are NOT copied: the GPU machine's own torch 2.11.0+cu130 provides them.
#   usage: scripts/stage_device.sh [bazel targets...]   (default: every binary the GPU runs need)
set -euo pipefail
cd "$(dirname "$0")/.."
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(//trainer/smoke:torch_smoke_main)
  for t in //trainer:trainer //bench:trainer_bench //server:coordinator //worker:worker //cli:gauntlet //trainer/data:prepare_data \
           //trainer/kernels:rms_norm_test //trainer/kernels:gelu_ffn_test //trainer/kernels:rotary_test //trainer/kernels:elementwise_test //trainer/kernels:causal_conv_test //trainer/train:train_step_test \
           //trainer/kernels:linear_cross_entropy_test //trainer/kernels:kernels_graph_test \
           //trainer/kernels:kernels_bench; do
    if bazel query "$t" >/dev/null 2>&1; then targets+=("$t"); fi
  done
fi
bazel build --config=cuda -c opt "${targets[@]}"
rm -rf .device && mkdir -p .device/bin .device/lib
stage_libs() {  # the shared libraries ldd resolves for $1
  # Every shared library ldd resolves, except glibc's own and what torch's wheel ships there.
  ldd "$1" | awk '/=> \//{print $3}' | while read -r lib; do
    case "$lib" in
      */site-packages/*|*/libstdc++*|*/libgcc_s*|*/libutil.so*|*/libc.so*|*/libm.so*|*/libdl.so*|*/librt.so*|*/libpthread.so*|*/ld-linux*) ;;
      *) cp -Ln "$lib" .device/lib/ 2>/dev/null || true ;;
    esac
  done
}
for t in "${targets[@]}"; do
  path="bazel-bin/$(echo "${t#//}" | tr ':' '/')"
  cp -L "$path" .device/bin/
  stage_libs "$path"
done
# The SentencePiece plugin is embedded in the binaries and dlopen'ed at run time, so ldd of a
# binary does not list what the plugin needs (libsentencepiece*): stage those too.
plugin=bazel-bin/trainer/data/libgauntlet_sentencepiece.so
[[ -e "$plugin" ]] && stage_libs "$plugin"
cp scripts/device_env.sh .device/
# The device gets a copy of the tree without .git: record which commit the binaries are.
git rev-parse HEAD > .device/COMMIT 2>/dev/null || true
# The repository's data/ travels with the working tree; .device/data keeps the path the device
# scripts use.
mkdir -p .device/data/tinyshakespeare
cp data/tinyshakespeare/input.txt .device/data/tinyshakespeare/
# The carried tree is capped at 64 MiB; libarchive drags in ICU's 30 MB data file, so ship the
# libraries compressed (device_env.sh unpacks them on first use).
tar -C .device -cJf .device/lib.tar.xz lib && rm -rf .device/lib
du -sh .device
