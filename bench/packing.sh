#!/usr/bin/env bash
# Several 2-device trials packed on one worker, concurrency and tok/s vs a solo run.
#   usage: bench/packing.sh [--device cpu|cuda] [--slots 8] [--trials 4] [--size tiny] [--steps 60]
# Binaries: bazel-bin/ here, .device/bin on the GPU machine (see bench/bench_env.sh).
set -euo pipefail
source "$(dirname "$0")/bench_env.sh"
data_args=()
if [[ " $* " != *" --data "* && -n "${GAUNTLET_BENCH_DATA:-}" ]]; then
  data_args=(--data "$GAUNTLET_BENCH_DATA")
fi
exec "$BENCH_PYTHON" "$bench_root/bench/multigpu_bench.py" packing "${data_args[@]}" "$@"
