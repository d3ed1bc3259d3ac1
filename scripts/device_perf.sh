#!/usr/bin/env bash
# Runs on the GPU machine (repo root, staged .device/): the custom kernels' GPU tests and
# micro-benchmark, per-kernel device-time profiles of warm training steps, and graph-vs-eager
# throughput. Everything goes to $OUT/perf.txt (one file: the device tool returns few files).
# PROFILE_ONLY=1 skips the tests and the micro-benchmark.
set -uo pipefail
source scripts/device_env.sh
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
DATA="$PWD/.device/data/tinyshakespeare/input.txt"
log="$OUT/perf.txt"
work="$(mktemp -d)"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; date -u
  for t in $([[ "${PROFILE_ONLY:-0}" == 1 ]] || echo rms_norm_test gelu_ffn_test elementwise_test \
      causal_conv_test train_step_test rotary_test linear_cross_entropy_test kernels_graph_test \
      decode_graph_test); do
    echo "== $t"
    if [[ -x .device/bin/$t ]]; then .device/bin/$t 2>&1 | grep -vE '^\[ +(RUN|OK) ' | tail -40
    else echo "missing .device/bin/$t"; fi
  done
  echo "== kernels_bench"
  [[ "${PROFILE_ONLY:-0}" != 1 && -x .device/bin/kernels_bench ]] && .device/bin/kernels_bench 2>&1 | tail -30
  for model in standard:seed worker:seed standard:gpt2-small; do
    arch="${model%%:*}"; size="${model#*:}"
    cat > "$work/p.yaml" <<YAML
data: {path: $DATA, tokenizer: char}
model: {arch: $arch, size: $size}
train: {batch_size: 16, log_every: 100}
budget: {steps: 60}
eval: {every_steps: 0, max_tokens: 16384}
seed: 1
YAML
    echo "== profile: $arch $size (CUDA graph, 20 warm steps)"
    trainer --spec "$work/p.yaml" --profile_steps=20 2>&1 | grep -vE '^step |^\{' | tail -40
  done
  if (($#)); then
    echo "== graph vs eager"
    STEPS=300 bash bench/graph_vs_eager.sh "$@" 2>&1 | tail -14
  fi
} > "$log" 2>&1
rm -f "$OUT"/*.log "$OUT"/graph_vs_eager.md
tail -60 "$log"
