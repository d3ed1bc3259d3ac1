#!/usr/bin/env bash
# Data-parallel scaling of one trial on 1..N ranks of this host, with a replica check.
#   usage: bench/scaling.sh [--device cpu|cuda] [--size 124m] [--ranks "1 2 4 8"] [--steps 200]
#          [--batch_size 16] [--data FILE] [--threads_per_rank N] [--json_out FILE]
# Binaries: bazel-bin/ here, .device/bin on the GPU machine (see bench/bench_env.sh).
set -euo pipefail
source "$(dirname "$0")/bench_env.sh"
data_args=()
if [[ " $* " != *" --data "* && -n "${GAUNTLET_BENCH_DATA:-}" ]]; then
  data_args=(--data "$GAUNTLET_BENCH_DATA")
fi
exec "$BENCH_PYTHON" "$bench_root/bench/multigpu_bench.py" scaling "${data_args[@]}" "$@"
