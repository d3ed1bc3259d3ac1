#!/usr/bin/env bash
# The architecture zoo (configs/zoo.yaml's variants plus the attention-drop stage) through a real
# coordinator and worker processes, then compare's markdown table for docs/RESULTS.md.
#   usage: bench/zoo.sh [--device cuda|cpu] [--steps 150] [--seeds 1 2] [--workers 8] [--size seed]
# On the GPU machine (after scripts/stage_device.sh): source scripts/device_env.sh is done by
# bench_env.sh; every worker offers GPU 0, so --workers trials share the one GPU.
# Binaries: bazel-bin/ here, .device/bin on the GPU machine (see bench/bench_env.sh).
set -euo pipefail
source "$(dirname "$0")/bench_env.sh"
data_args=()
if [[ " $* " != *" --data "* && -n "${GAUNTLET_BENCH_DATA:-}" ]]; then
  data_args=(--data "$GAUNTLET_BENCH_DATA")
fi
exec "$BENCH_PYTHON" "$bench_root/bench/zoo.py" --zoo "$bench_root/configs/zoo.yaml" \
  "${data_args[@]}" "$@"
