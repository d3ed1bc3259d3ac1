#!/usr/bin/env bash
# Runs on the GPU machine (staged .device/): trainer_bench throughput of the benchmark models with
# each scaled-dot-product-attention backend put first (GAUNTLET_SDPA_BACKEND), to choose the one
# the trainer should prefer. Prints one markdown table per backend.
#   usage: bash bench/sdpa_backends.sh [MODELS] [BACKENDS]
set -uo pipefail
source scripts/device_env.sh
MODELS="${1:-seed-standard,seed-worker,gpt2-small}"
BACKENDS="${2:-default cudnn flash efficient}"
DATA="$PWD/.device/data/tinyshakespeare/input.txt"
for backend in $BACKENDS; do
  echo "== attention backend: $backend"
  if [[ "$backend" == default ]]; then unset GAUNTLET_SDPA_BACKEND
  else export GAUNTLET_SDPA_BACKEND="$backend"; fi
  for model in ${MODELS//,/ }; do
    steps=400; [[ "$model" == gpt2* ]] && steps=100  # a few seconds each
    trainer_bench --models="$model" --data="$DATA" --steps=$steps --warmup_steps=20 --repeats=3 \
      2>&1 | grep -E '^\| [a-z0-9]|attention:|error'
  done
done
