#!/usr/bin/env bash
# Runs on the GPU machine (repo root, staged .device/): the real trainer binary per arch and size,
# with the training step captured in a CUDA graph and eagerly, same spec otherwise. Prints one
# markdown row per run with the steady-state tokens/s of the trainer's last log window (evaluation
# off, so the window is pure training), and the trainer's own report of the step mode.
#   usage: bash bench/graph_vs_eager.sh [ARCH:SIZE ...]   (default: the seed archs and gpt2-small)
set -uo pipefail
source scripts/device_env.sh
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
DATA="${GAUNTLET_BENCH_DATA:-$PWD/.device/data/tinyshakespeare/input.txt}"
STEPS="${STEPS:-300}"
runs=("$@")
((${#runs[@]})) || runs=(standard:seed worker:seed sparse_depth:seed hybrid:seed standard:gpt2-small)
work="$(mktemp -d)"
{
echo "| arch | size | step mode | tok/s | ms/step | MFU | peak GiB |"
echo "| --- | --- | --- | ---: | ---: | ---: | ---: |"
for run in "${runs[@]}"; do
  arch="${run%%:*}"; size="${run#*:}"
  steps=$STEPS; [[ "$size" == gpt2-small ]] && steps=$((STEPS / 4))
  for graphs in true false; do
    spec="$work/$arch-$size-$graphs.yaml"
    cat > "$spec" <<YAML
data: {path: $DATA, tokenizer: char}
model: {arch: $arch, size: $size}
train: {batch_size: 16, log_every: $((steps / 3)), cuda_graphs: $graphs}
budget: {steps: $steps}
eval: {every_steps: 0, max_tokens: 16384}
seed: 1
YAML
    log="$OUT/$arch-$size-graphs_$graphs.log"
    trainer --spec "$spec" > "$log" 2>&1
    rc=$?
    mode="$(sed -n 's/^train step: //p' "$log" | tail -1)"
    last="$(grep -E '^step [0-9]+/' "$log" | tail -1)"
    ms="$(echo "$last" | sed -n 's/.*| \([0-9.]*\) ms |.*/\1/p')"
    mfu="$(echo "$last" | sed -n 's/.*| \([0-9]*\)% MFU.*/\1%/p')"
    tps="$(echo "$last" | sed -n 's/.*| \([0-9.]*[kMG]*\) tok\/s.*/\1/p')"
    mem="$(echo "$last" | sed -n 's/.*| \([0-9.]*\) GiB.*/\1/p')"
    [[ $rc == 0 ]] || mode="FAILED rc=$rc: $(tail -1 "$log")"
    echo "| $arch | $size | $mode | $tps | $ms | $mfu | $mem |"
  done
done
} | tee "$OUT/graph_vs_eager.md"
