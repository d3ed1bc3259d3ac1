# Sourced on the GPU machine (in the repo root) before running staged binaries from .device/bin.
[[ -d .device/lib ]] || tar -C .device -xJf .device/lib.tar.xz
TORCH_SITE=/opt/torch/.venv/lib/python3.12/site-packages
NV="$TORCH_SITE/nvidia"
export LD_LIBRARY_PATH="$PWD/.device/lib:$TORCH_SITE/torch/lib:$NV/nccl/lib:$NV/cu13/lib:$NV/cudnn/lib:$NV/cusparselt/lib:$NV/nvshmem/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$PWD/.device/bin:$PATH"
# Multi-GPU kinds keep NVLink multicast off.
export NCCL_NVLS_ENABLE=0
