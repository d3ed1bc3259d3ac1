#!/usr/bin/env bash
# The side-by-side benchmark (issue 9): Gauntlet's trainer_bench and the PyTorch references of the
# same models (bench/reference/), one after another on the same GPU in one call. Writes into $OUT
# (default /tmp/out): side_by_side-<date>.json (every row) and side_by_side-<date>.md (the ratio
# table), side_by_side.log, and inductor-cache.tar.xz[.partNN] (the compile cache, see below).
# Then, here: python3 bench/reference/report.py --apply <that dir>
#
#   GPU machine, repo root, binaries staged by scripts/stage_device.sh (carry .device):
#     source scripts/device_env.sh && bash bench/side_by_side.sh
#   CPU dry run of the plumbing (tiny models, no GPU):
#     DEVICE=cpu SIZE=tiny MODES=eager TRAINER_BENCH=bazel-bin/bench/trainer_bench \
#       DATA=data/tinyshakespeare/input.txt bash bench/side_by_side.sh
#
# Compiles (max-autotune above all) take minutes when cold. Inductor's and Triton's caches live in
# CACHE_DIR (default bench/.inductor-cache, git-ignored, so it survives between calls while the
# machine stays warm); if it is absent and CACHE_TAR (default bench/.inductor-cache.tar.xz, or
# its .partNN pieces) is there, it is unpacked first. The cache is packed into $OUT at the end, so
# copying it back to CACHE_TAR and carrying it restores it on a fresh machine.
# Every reference run has its own process and timeout (RUN_TIMEOUT_S, default 300); no run starts
# after DEADLINE_S (default 540) seconds of this script, so one call stays within the device
# tool's 10 minutes and still writes its outputs and the cache. Runs cut off are rows with an
# error; running the same command again, with the cache now warm, completes them.
#
# With two or more GPUs visible, the seed models run on GPU 0 while gpt2-small runs on GPU 1
# (ONE_GPU=1 runs everything on one GPU, one after another).
# Environment: MODELS (comma-separated, default all five, in run order),
# MODES (eager,compile,max-autotune),
# SKIP_GAUNTLET=1, OPTIMIZER=fused (eager fused AdamW in the compiled modes too, instead of the
# compiled clipping + AdamW step), DEVICE (cuda), SIZE (override every model's size, e.g. tiny),
# DATA, TRAINER_BENCH (default: trainer_bench on PATH), PYTHON, OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
OUT="${OUT:-/tmp/out}"
# The models whose targets compare with the best PyTorch first: a deadline cuts the others.
MODELS="${MODELS:-seed-standard,gpt2-small,seed-worker,seed-sparse_depth,seed-hybrid}"
MODES="${MODES:-eager,compile,max-autotune}"
DEVICE="${DEVICE:-cuda}"
SIZE="${SIZE:-}"
DATA="${DATA:-.device/data/tinyshakespeare/input.txt}"
TRAINER_BENCH="${TRAINER_BENCH:-trainer_bench}"
DEADLINE_S="${DEADLINE_S:-540}"
RUN_TIMEOUT_S="${RUN_TIMEOUT_S:-300}"
CACHE_DIR="${CACHE_DIR:-bench/.inductor-cache}"
CACHE_TAR="${CACHE_TAR:-bench/.inductor-cache.tar.xz}"
if [[ -z "${PYTHON:-}" ]]; then
  PYTHON=python3
  if ! python3 -c 'import torch' 2>/dev/null && [[ -x /opt/torch/.venv/bin/python3 ]]; then
    PYTHON=/opt/torch/.venv/bin/python3
  fi
fi
# The staged binaries' libraries (scripts/stage_device.sh); sourcing twice is harmless.
if [[ "$DEVICE" == cuda && -e .device/lib.tar.xz ]]; then source scripts/device_env.sh; fi
mkdir -p "$OUT"
WORK="$(mktemp -d)"
LOG="$OUT/side_by_side.log"
: > "$LOG"
say() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }

# The command as run, with every setting that changes what is measured.
command="bash bench/side_by_side.sh"
for var in MODELS MODES SIZE DEVICE SKIP_GAUNTLET OPTIMIZER ONE_GPU; do
  default=""
  case $var in
    MODELS) default="seed-standard,gpt2-small,seed-worker,seed-sparse_depth,seed-hybrid" ;;
    MODES) default="eager,compile,max-autotune" ;;
    DEVICE) default="cuda" ;;
  esac
  value="${!var:-}"
  if [[ -n "$value" && "$value" != "$default" ]]; then command="$var=$value $command"; fi
done

if [[ "$DEVICE" == cuda ]] && command -v nvidia-smi >/dev/null; then
  GPU="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> "$LOG"
else
  GPU=cpu
fi
say "side by side on $GPU: models $MODELS, modes $MODES${SIZE:+, size $SIZE}; $PYTHON"

if [[ ! -d "$CACHE_DIR" ]] && compgen -G "$CACHE_TAR*" >/dev/null; then
  say "unpacking the compile cache from $CACHE_TAR*"
  mkdir -p "$CACHE_DIR"
  cat "$CACHE_TAR"* | tar -C "$CACHE_DIR" -xJ || say "could not unpack $CACHE_TAR (going on cold)"
fi

# One group of models on one GPU: Gauntlet's trainer_bench, then the PyTorch references of the
# same models, so every ratio compares runs on the same GPU. Seed models and gpt2-small differ 20x
# in step time: each group gets about 1-3 s per timed run.
run_group() {  # group models gpu
  local group=$1 models=$2 gpu=$3 steps warmup
  if [[ $group == seed ]]; then steps=200; warmup=20; else steps=60; warmup=10; fi
  if [[ -n "$SIZE" ]]; then steps=5; warmup=2; fi
  local env=()
  [[ -n "$gpu" ]] && env=(env CUDA_VISIBLE_DEVICES="$gpu")
  if [[ "${SKIP_GAUNTLET:-0}" != 1 ]]; then
    say "gauntlet${gpu:+ (GPU $gpu)}: trainer_bench --models=$models --steps=$steps --repeats=3"
    "${env[@]}" "$TRAINER_BENCH" --models="$models" ${SIZE:+--size=$SIZE} --device="$DEVICE" \
      --data="$DATA" --steps=$steps --warmup_steps=$warmup --repeats=3 \
      --json_out="$WORK/gauntlet-$group.json" 2>&1 | tee -a "$LOG"
  fi
  local left=$((DEADLINE_S - (SECONDS - start)))
  say "references${gpu:+ (GPU $gpu)}: $models, $left s left before the deadline"
  "${env[@]}" "$PYTHON" -m bench.reference.run --models="$models" --modes="$MODES" \
    --device="$DEVICE" ${SIZE:+--size=$SIZE} --optimizer="${OPTIMIZER:-auto}" \
    --out="$WORK/reference-$group.jsonl" --cache_dir="$CACHE_DIR" --timeout_s="$RUN_TIMEOUT_S" \
    --deadline_s="$left" 2>&1 | tee -a "$LOG"
}

seed_models="$(tr ',' '\n' <<< "$MODELS" | grep -v '^gpt2-small$' | paste -sd, -)"
gpt2_models="$(tr ',' '\n' <<< "$MODELS" | grep '^gpt2-small$' | paste -sd, -)"
gpus=0
[[ "$DEVICE" == cuda ]] && command -v nvidia-smi >/dev/null && gpus=$(nvidia-smi -L | wc -l)
if [[ -n "$seed_models" && -n "$gpt2_models" && $gpus -ge 2 && "${ONE_GPU:-0}" != 1 ]]; then
  # Two GPUs: the two groups run at once, each on its own GPU (the figures of a model never mix
  # GPUs); the call takes half the time.
  say "two GPUs: seed models on GPU 0, gpt2-small on GPU 1, at the same time"
  run_group gpt2 "$gpt2_models" 1 &
  run_group seed "$seed_models" 0
  wait
else
  [[ -n "$seed_models" ]] && run_group seed "$seed_models" ""
  [[ -n "$gpt2_models" ]] && run_group gpt2 "$gpt2_models" ""
fi
gauntlet_args=()
for json in "$WORK"/gauntlet-*.json; do
  [[ -s "$json" ]] && gauntlet_args+=(--gauntlet "$json")
done
cat "$WORK"/reference-*.jsonl > "$WORK/reference.jsonl" 2>/dev/null || : > "$WORK/reference.jsonl"

"$PYTHON" bench/reference/report.py "${gauntlet_args[@]}" --reference="$WORK/reference.jsonl" \
  --out_dir="$OUT" --command="$command" --gpu="$GPU" 2>&1 | tee -a "$LOG"

if [[ -d "$CACHE_DIR" ]]; then
  # The device tool returns at most 8 files of 16 MiB: pieces of 15 MiB, Triton's cache left out
  # (it holds every autotuning candidate) when the whole would not fit in 4 pieces.
  rm -f "$OUT"/inductor-cache.tar.xz*
  XZ_OPT=-T0 tar -C "$CACHE_DIR" -cJf "$WORK/cache.tar.xz" .
  if (( $(stat -c %s "$WORK/cache.tar.xz") > 60 * 1024 * 1024 )); then
    XZ_OPT=-T0 tar -C "$CACHE_DIR" --exclude=./triton -cJf "$WORK/cache.tar.xz" .
    say "compile cache without triton/: $(du -h "$WORK/cache.tar.xz" | cut -f1)"
  fi
  split -b 15M -d "$WORK/cache.tar.xz" "$OUT/inductor-cache.tar.xz.part"
  pieces=$(ls "$OUT"/inductor-cache.tar.xz.part* | wc -l)
  say "compile cache packed: $pieces piece(s), $(du -h "$WORK/cache.tar.xz" | cut -f1)"
fi
rm -rf "$WORK"
say "done in $((SECONDS - start)) s; outputs in $OUT"
