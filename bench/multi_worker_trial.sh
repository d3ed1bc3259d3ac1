#!/usr/bin/env bash
# One trial spanning two worker processes on this host (coordinator + 2 workers).
#   usage: bench/multi_worker_trial.sh [--device cpu|cuda] [--size tiny] [--steps 60] [--data FILE]
# Binaries: bazel-bin/ here, .device/bin on the GPU machine (see bench/bench_env.sh).
set -euo pipefail
source "$(dirname "$0")/bench_env.sh"
data_args=()
if [[ " $* " != *" --data "* && -n "${GAUNTLET_BENCH_DATA:-}" ]]; then
  data_args=(--data "$GAUNTLET_BENCH_DATA")
fi
exec "$BENCH_PYTHON" "$bench_root/bench/multigpu_bench.py" multi-worker "${data_args[@]}" "$@"
