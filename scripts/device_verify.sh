#!/usr/bin/env bash
# Runs on the GPU machine (carry .device): per-arch throughput with a per-phase profile, the NCCL
# path at world size 1, 124m, a resumed run that re-saves its final checkpoint (the path that once
# crashed through the wheel's std::filesystem), and the scaling script at world size 1.
set -uo pipefail
source scripts/device_env.sh
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
V="$(mktemp -d)"
DATA="$PWD/.device/data/tinyshakespeare/input.txt"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; date -u
  echo "== seed size, every arch, profile (bf16, B=16, T=1024)"
  trainer_bench --size=seed --data="$DATA" --steps=50 --warmup_steps=10 --profile 2>&1
  echo "== standard seed through NCCL at world size 1"
  RANK=0 LOCAL_RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29611 \
    trainer_bench --archs=standard --size=seed --data="$DATA" --force_ddp 2>&1
  echo "== 124m standard"
  trainer_bench --archs=standard --size=124m --data="$DATA" --steps=30 --warmup_steps=5 2>&1
} | tee "$OUT/bench.md"

cat > $V/trial.yaml <<YAML
data: {path: $DATA}
model: {arch: worker, size: seed}
train: {batch_size: 16, log_every: 25}
budget: {steps: 100}
eval: {every_steps: 50}
checkpoint: {every_steps: 50, keep_last: 2}
seed: 7
run_dir: $V/run
YAML
echo "== trainer, then the same spec again (resumes at its last step, re-saves)" | tee "$OUT/resave.txt"
trainer --spec $V/trial.yaml 2>&1 | tail -3 | tee -a "$OUT/resave.txt"; echo "rc=${PIPESTATUS[0]}" | tee -a "$OUT/resave.txt"
trainer --spec $V/trial.yaml 2>&1 | tail -2 | tee -a "$OUT/resave.txt"; echo "rc=${PIPESTATUS[0]}" | tee -a "$OUT/resave.txt"
ls $V/run/checkpoints | tee -a "$OUT/resave.txt"
echo "== scaling script on one GPU"
bash bench/scaling.sh --device cuda --size seed --ranks "1" --steps 60 2>&1 | tail -12 | tee "$OUT/scaling.txt"
