#!/usr/bin/env bash
# Runs on the GPU machine (repo root, staged .device/ with coordinator, worker, gauntlet, trainer,
# decode_graph_test): inference speed of every architecture through the real system:
# configs/inference.yaml (trials of kind inference) submitted to a real coordinator and run one
# after another by a real worker agent on the one GPU, under equal conditions (see the config).
# First the CUDA graph decode test. Writes $OUT/inference.md (the tables for docs/RESULTS.md) and
# $OUT/inference.json.
#   usage: bash bench/inference.sh        (about 1.5-2.5 minutes on one H200, process starts included)
set -uo pipefail
source scripts/device_env.sh
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
DATA_DIR="$PWD/.device/data"
RUN="$(mktemp -d)"
report="$OUT/inference.md"
{
  echo "GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "Command: bash bench/inference.sh (coordinator + worker + trainer, one GPU)"
  echo
} > "$report"

echo "== decode_graph_test (CUDA graph decode == eager decode)"
if [[ -x .device/bin/decode_graph_test ]]; then
  .device/bin/decode_graph_test 2>&1 | grep -vE '^\[ +(RUN|OK) ' | tail -15 | tee -a "$OUT/decode_graph_test.txt"
else
  echo "missing .device/bin/decode_graph_test (scripts/stage_device.sh stages it)"
fi

started=$SECONDS
coordinator --listen=127.0.0.1:50161 --metrics_listen=127.0.0.1:9574 --db="$RUN/db" \
  > "$RUN/coordinator.log" 2>&1 &
coordinator_pid=$!
sleep 1
worker --coordinator=127.0.0.1:50161 --worker_id=gpu0 --address=127.0.0.1 --work_dir="$RUN/work" \
  --trainer="$PWD/.device/bin/trainer" --data_root="$DATA_DIR" > "$RUN/worker.log" 2>&1 &
worker_pid=$!
export GAUNTLET_COORDINATOR=127.0.0.1:50161
gauntlet submit configs/inference.yaml
deadline=$((SECONDS + 160))
while ((SECONDS < deadline)); do
  gauntlet describe inference-seed 2>/dev/null | grep -qE '^State: +(completed|failed|canceled)' && break
  sleep 2
done
echo "== experiment finished after $((SECONDS - started)) s"
gauntlet describe inference-seed > "$OUT/inference-describe.txt" 2>&1
gauntlet compare inference-seed --format markdown >> "$report" 2>&1
gauntlet compare inference-seed --format json > "$OUT/inference.json" 2>&1
# Each trial's log: the bound and the decode mode (CUDA graph or why eager).
for log in "$RUN"/work/*/attempt-*/rank-0/stdout.log; do
  grep -hE '^inference: ' "$log"
done > "$OUT/inference-trials.log" 2>/dev/null
# The Hybrid GPT README's claim (38% faster prefill, 58% faster decode than a standard GPT at
# context 256), checked on each standard/hybrid pair of the table.
python3 - "$OUT/inference.json" >> "$report" <<'PY'
import json, sys
rows = {r["variant"]: r for r in json.load(open(sys.argv[1])).get("inference", [])}
def prefill(r, c): return next((p["seconds"] for p in r.get("prefill", []) if p["context"] == c), 0)
def decode(r, b): return next((d["tokens_per_second"] for d in r.get("decode", []) if d["batch"] == b), 0)
print("\nHybrid vs standard at context 256 (README claim: prefill 38% faster, decode 58% faster):\n")
print("| pair | prefill 256: standard / hybrid ms | hybrid faster by | decode b1: hybrid / standard tok/s | hybrid faster by |")
print("| --- | ---: | ---: | ---: | ---: |")
for std, hyb in (("standard", "hybrid"), ("standard-eager", "hybrid-eager"), ("gpt2-standard", "gpt2-hybrid")):
    if std not in rows or hyb not in rows or not rows[std]["n"] or not rows[hyb]["n"]:
        print(f"| {std} / {hyb} | missing | | | |"); continue
    ps, ph = prefill(rows[std], 256), prefill(rows[hyb], 256)
    ds, dh = decode(rows[std], 1), decode(rows[hyb], 1)
    print(f"| {std} / {hyb} | {1e3*ps:.3f} / {1e3*ph:.3f} | {100*(ps/ph-1):+.0f}% "
          f"| {dh:.0f} / {ds:.0f} | {100*(dh/ds-1):+.0f}% |")
PY
echo >> "$report"
echo "Decode per trial (log lines; bound = weights + KV cache read once at the GPU's bandwidth):" >> "$report"
grep -E 'inference: (.*(bf16|fp32).*weights|decode batch|decoded eagerly)' "$OUT/inference-trials.log" \
  | sed 's/^/    /' >> "$report"
kill "$worker_pid" 2>/dev/null; wait "$worker_pid" 2>/dev/null
kill "$coordinator_pid" 2>/dev/null; wait "$coordinator_pid" 2>/dev/null
cp "$RUN"/coordinator.log "$RUN"/worker.log "$OUT"/ 2>/dev/null
cat "$report"
