#!/usr/bin/env bash
# Runs on the GPU machine (repo root, staged .device/): evidence that the CUDA-graph step trains
# the same model as the eager step.
#  1. Exactness: every arch, dropout 0, 40 steps logged every step, graph vs eager: the loss
#     sequences must agree (the graph replays the eager step's kernels).
#  2. Convergence: standard and worker at seed size (dropout 0.1), 2,000 steps, 2 seeds each, graph
#     vs eager: final fair validation loss, to compare within seed noise.
set -uo pipefail
source scripts/device_env.sh
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
DATA="${GAUNTLET_BENCH_DATA:-$PWD/.device/data/tinyshakespeare/input.txt}"
STEPS="${STEPS:-2000}"
work="$(mktemp -d)"
run() {  # name arch graphs seed steps dropout log_every
  cat > "$work/$1.yaml" <<YAML
data: {path: $DATA, tokenizer: char}
model: {arch: $2, size: seed, dropout: $6}
train: {batch_size: 16, log_every: $7, cuda_graphs: $3}
budget: {steps: $5}
eval: {every_steps: 0}
seed: $4
YAML
  trainer --spec "$work/$1.yaml" > "$OUT/$1.log" 2>&1 || echo "FAILED: $1 (see $1.log)"
}
{
echo "== exactness: dropout 0, 40 steps, loss at every step"
for arch in standard worker sparse_depth hybrid; do
  run "exact-$arch-g" "$arch" true 3 40 0 1
  run "exact-$arch-e" "$arch" false 3 40 0 1
  g="$(grep -E '^step [0-9]+/' "$OUT/exact-$arch-g.log" | sed 's/.*| loss \([0-9.]*\).*/\1/' | tr '\n' ' ')"
  e="$(grep -E '^step [0-9]+/' "$OUT/exact-$arch-e.log" | sed 's/.*| loss \([0-9.]*\).*/\1/' | tr '\n' ' ')"
  python3 - "$arch" "$g" "$e" <<'PY'
import sys
arch, g, e = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
n = min(len(g), len(e))
diff = max(abs(a - b) for a, b in zip(g, e)) if n else float("nan")
same = sum(a == b for a, b in zip(g, e))
print(f"{arch}: {n} steps, identical at {same}, max |graph - eager| = {diff:.2e}, last {g[-1] if g else None} vs {e[-1] if e else None}")
PY
done
echo "== convergence: seed size, dropout 0.1, $STEPS steps, final fair val loss"
echo "| arch | seed | graph val | eager val | graph tok/s | eager tok/s |"
echo "| --- | --- | ---: | ---: | ---: | ---: |"
for arch in standard worker; do
  for seed in 1 2; do
    run "conv-$arch-$seed-g" "$arch" true "$seed" "$STEPS" 0.1 500
    run "conv-$arch-$seed-e" "$arch" false "$seed" "$STEPS" 0.1 500
    val() { grep -oE '"finalValLoss":[0-9.]+' "$OUT/$1.log" | tail -1 | cut -d: -f2; }
    tps() { grep -E '^step [0-9]+/' "$OUT/$1.log" | tail -1 | sed -n 's/.*| \([0-9.]*[kMG]*\) tok\/s.*/\1/p'; }
    echo "| $arch | $seed | $(val conv-$arch-$seed-g) | $(val conv-$arch-$seed-e) | $(tps conv-$arch-$seed-g) | $(tps conv-$arch-$seed-e) |"
  done
done
} 2>&1 | tee "$OUT/graph_check.md"
