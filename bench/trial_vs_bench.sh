#!/usr/bin/env bash
# Runs on the GPU machine (repo root, staged .device/ with coordinator, worker, gauntlet, trainer,
# trainer_bench): the same model trained (1) by trainer_bench, the bare loop, and (2) as a trial
# submitted to a real coordinator and launched by a real worker agent (events file, fair eval every
# 1,000 steps, checkpoints), in the same call on the same GPU. Prints both steady-state tokens/s.
#   usage: bash bench/trial_vs_bench.sh [ARCH] [STEPS]   (default standard 3000)
set -uo pipefail
source scripts/device_env.sh
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
ARCH="${1:-standard}"; STEPS="${2:-3000}"
DATA_DIR="$PWD/.device/data"
RUN="$(mktemp -d)"
echo "== bench: trainer_bench --archs=$ARCH --size=seed"
trainer_bench --archs="$ARCH" --size=seed --data="$DATA_DIR/tinyshakespeare/input.txt" \
  --steps=400 --warmup_steps=50 2>&1 | tee "$OUT/bench-$ARCH.md"

cat > "$RUN/trial.yaml" <<YAML
name: trial-vs-bench
data: {path: tinyshakespeare/input.txt, tokenizer: char}
model: {arch: $ARCH, size: seed}
train: {batch_size: 16, log_every: 100}
budget: {steps: $STEPS}
eval: {every_steps: 1000}
checkpoint: {every_steps: 1000}
resources: {device: gpu, gpus_per_trial: 1}
seeds: [1]
variants:
  - name: $ARCH
YAML
coordinator --listen=127.0.0.1:50151 --metrics_listen=127.0.0.1:9564 --db="$RUN/db" \
  > "$RUN/coordinator.log" 2>&1 &
sleep 1
worker --coordinator=127.0.0.1:50151 --worker_id=gpu0 --address=127.0.0.1 --work_dir="$RUN/work" \
  --trainer="$PWD/.device/bin/trainer" --data_root="$DATA_DIR" > "$RUN/worker.log" 2>&1 &
sleep 2
export GAUNTLET_COORDINATOR=127.0.0.1:50151
gauntlet submit "$RUN/trial.yaml" | tee "$OUT/submit.txt"
deadline=$((SECONDS + 400))
while ((SECONDS < deadline)); do
  gauntlet describe trial-vs-bench 2>/dev/null | grep -qE '^State: +(completed|failed|canceled)' && break
  sleep 3
done
gauntlet describe trial-vs-bench > "$OUT/trial-describe.txt" 2>&1
log="$(ls "$RUN"/work/*/attempt-*/rank-0/stdout.log 2>/dev/null | head -1)"
[[ -n "$log" ]] && cp "$log" "$OUT/trial-$ARCH.stdout.log"
echo "== trial through coordinator + worker: steady-state log windows (tok/s), then the summary"
grep -E '^step [0-9]+/' "$OUT/trial-$ARCH.stdout.log" | tail -5
grep -oE '"tokensPerSecond":[0-9.e+]+' "$OUT/trial-$ARCH.stdout.log" | tail -1
kill %1 %2 2>/dev/null; wait 2>/dev/null
