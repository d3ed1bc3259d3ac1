#!/usr/bin/env bash
# Runs on the GPU machine (device tool, carry .device): per-arch throughput benchmarks, the NCCL
# path at world size 1, and starts the 300 s standard-vs-worker experiment through the real
# coordinator and worker (left running in their own sessions; scripts/device_wait.sh reads it).
#   usage (GPU machine, repo root): bash scripts/device_bench.sh   (SKIP_BENCH=1: only the experiment)
set -uo pipefail
source scripts/device_env.sh
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
# The coordinator's store and the worker's run directories on the GPU machine.
RUN="${GAUNTLET_DEVICE_RUN:-${TMPDIR:-/tmp}/gauntlet-device}"
DATA=.device/data/tinyshakespeare/input.txt
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
date -u | tee -a "$OUT/gpu.txt"

if [[ "${SKIP_BENCH:-0}" != 1 ]]; then
echo "== seed size, every arch (bf16, B=16, T=1024)" | tee "$OUT/bench.md"
trainer_bench --size=seed --data="$DATA" --steps=50 --warmup_steps=10 2>&1 | tee -a "$OUT/bench.md"
echo "== seed size, standard through the NCCL bucketed all-reduce at world size 1" | tee -a "$OUT/bench.md"
RANK=0 LOCAL_RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29611 \
  trainer_bench --archs=standard --size=seed --data="$DATA" --force_ddp 2>&1 | tee -a "$OUT/bench.md"
echo "== 124m standard (bf16, B=16, T=1024)" | tee -a "$OUT/bench.md"
trainer_bench --archs=standard --size=124m --data="$DATA" --steps=30 --warmup_steps=5 2>&1 | tee -a "$OUT/bench.md"
fi

if [[ "${START_EXPERIMENT:-1}" == 1 ]]; then
  mkdir -p "$RUN"
  setsid coordinator --listen=127.0.0.1:50051 --metrics_listen=127.0.0.1:9464 --db=$RUN/db \
    > $RUN/coordinator.log 2>&1 < /dev/null &
  sleep 1
  setsid worker --coordinator=127.0.0.1:50051 --worker_id=h100 --address=127.0.0.1 \
    --work_dir=$RUN/work --trainer="$PWD/.device/bin/trainer" --data_root="$PWD/.device/data" \
    > $RUN/worker.log 2>&1 < /dev/null &
  sleep 2
  GAUNTLET_COORDINATOR=127.0.0.1:50051 gauntlet submit bench/gpu_compare_300s.yaml | tee "$OUT/submit.txt"
fi
