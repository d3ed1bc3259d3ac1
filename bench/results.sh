#!/usr/bin/env bash
# The GPU experiments of docs/RESULTS.md, in one device call, through the real coordinator,
# worker agents and CLI (docs/RESULTS.md says how each differs from the published protocol):
#   E2 results-prose: every registry architecture (standard, worker, sparse_depth, hybrid first,
#      then sqa, mixed, looped, matformer, attn_drop), 3 seeds, SentencePiece BPE-16k on the
#      Debian prose corpus, a token budget under one epoch, fair evaluation;
#   E1 results-wt-seed / results-wt-fair: the WorkerTransformer "2000 steps" benchmark, standard
#      vs worker-k4, 3 seeds, scored with the reference's own protocol and with the fair one.
# Phase A runs the four core archs of E2 one trial per GPU (their tokens/s and wall-clock
# comparison are valid). Phase B then adds TRIALS_PER_GPU-1 more agents per GPU, so trials
# share a GPU: E1 (higher priority) and the rest of E2 run two at a time. Every budget is in
# steps or tokens, so losses are compared at equal training; tokens/s and seconds of a trial
# that shared its GPU are not comparable (the renderer drops them). At DEADLINE_S everything
# still running is cancelled, so the call always returns its files.
#
#   GPU (repo root, .device staged, .results_data carried):   bash bench/results.sh
#   CPU dry run on the build machine (tiny sizes, ~2 min):     DRY_RUN=1 bash bench/results.sh
# Output: $OUT/results.tar.gz (compare markdown/CSV/JSON per experiment, every trial's events
# and rank-0 log, the specs, the timeline, the environment), turned into docs/RESULTS.md by
#   python3 bench/results_render.py results.tar.gz --apply
# Data: .results_data/{prose.tar.xz,prose-bpe16k.model}, written here by bench/results_data.sh.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
START=$SECONDS
DRY_RUN="${DRY_RUN:-0}"
OUT="${OUT:-/tmp/results-out}"; mkdir -p "$OUT"
RESULTS_DATA="${RESULTS_DATA:-$PWD/.results_data}"
SEEDS="${SEEDS:-1, 2, 3}"
TRIALS_PER_GPU="${TRIALS_PER_GPU:-2}"
ZOO="${ZOO:-1}"
RUN="$(mktemp -d /tmp/results-run.XXXXXX)"
log() { printf '[%4ds] %s\n' $((SECONDS - START)) "$*" | tee -a "$RUN/timeline.log"; }

if [[ "$DRY_RUN" == 1 ]]; then
  BIN="$PWD/bazel-bin"
  COORDINATOR="$BIN/server/coordinator"; WORKER="$BIN/worker/worker"; CLI="$BIN/cli/gauntlet"
  TRAINER="$BIN/trainer/trainer"; PREPARE="$BIN/trainer/data/prepare_data"
  DEVICE=cpu; SIZE=tiny; SEQ=64
  E1_STEPS="${E1_STEPS:-16}"; E1_EVAL=8; SEED_BATCHES=2; SEED_FINAL=4
  E2_TOKENS="${E2_TOKENS:-8192}"; E2_EVAL=4; E2_WARMUP=2
  # 3 MB is ~26 documents: a fifth of them held out so the val split is not empty.
  PROSE_MAX_BYTES="${PROSE_MAX_BYTES:-3000000}"; VAL_FRACTION=0.2
  # A 16k vocabulary makes every CPU step and evaluation slow: a small BPE trained here instead.
  VOCAB=1024; TOKENIZER_ARGS=(--tokenizer_sample_bytes=1000000); VAL_TOKENS=8192
  DEADLINE_S="${DEADLINE_S:-400}"
else
  source scripts/device_env.sh
  BIN="$PWD/.device/bin"
  COORDINATOR="$BIN/coordinator"; WORKER="$BIN/worker"; CLI="$BIN/gauntlet"
  TRAINER="$BIN/trainer"; PREPARE="$BIN/prepare_data"
  DEVICE=gpu; SIZE=seed; SEQ=1024
  # The published benchmark.py budget: 2,000 optimizer steps of 16 x 1024 tokens.
  E1_STEPS="${E1_STEPS:-2000}"; E1_EVAL=100; SEED_BATCHES=20; SEED_FINAL=50
  # 1,000 steps of 16 x 1024 tokens: 0.58 epochs of the prose corpus's 28.3M training tokens.
  E2_TOKENS="${E2_TOKENS:-16384000}"; E2_EVAL=100; E2_WARMUP=100
  PROSE_MAX_BYTES="${PROSE_MAX_BYTES:-0}"; VAL_FRACTION=0.02
  VOCAB=16384; TOKENIZER_ARGS=(--tokenizer_model="$RUN/data/prose-bpe16k.model"); VAL_TOKENS=0
  # Seconds after the start at which unfinished trials are cancelled: the device call's limit
  # is 600 s including the machine's start; compare and packing take ~15 s after this.
  DEADLINE_S="${DEADLINE_S:-420}"
fi
# Phase B starts when the core trials are done or at PHASE_A_MAX_S, whichever is first, so the
# WorkerTransformer experiments always get their turn (core trials still running then are
# marked as shared by the renderer).
PHASE_A_MAX_S="${PHASE_A_MAX_S:-$((DEADLINE_S / 2))}"
for b in "$COORDINATOR" "$WORKER" "$CLI" "$TRAINER"; do
  [[ -x "$b" ]] || { echo "results.sh: missing binary $b (stage or build it first)" >&2; exit 2; }
done

# --- data ----------------------------------------------------------------------------------------
DATA="$RUN/data"; CACHE="$RUN/cache"; mkdir -p "$DATA/tinyshakespeare" "$CACHE"
cp data/tinyshakespeare/input.txt "$DATA/tinyshakespeare/"
if [[ ! -s "$RESULTS_DATA/prose.tar.xz" || ! -s "$RESULTS_DATA/prose-bpe16k.model" ]]; then
  echo "results.sh: $RESULTS_DATA/prose.tar.xz and prose-bpe16k.model are missing:" \
       "run bash bench/results_data.sh on the build machine and carry .results_data" >&2
  exit 2
fi
log "extracting the prose corpus"
tar -C "$DATA" -xJf "$RESULTS_DATA/prose.tar.xz" || { echo "results.sh: cannot extract prose" >&2; exit 2; }
cp "$RESULTS_DATA/prose-bpe16k.model" "$DATA/"
export GAUNTLET_CACHE="$CACHE"  # the trainers inherit it through the agents' environment
if [[ -x "$PREPARE" ]]; then
  # Builds the token cache once with the exact data options of the spec below, so the trials
  # find it instead of each tokenizing the corpus (the key is the corpus and the tokenizer).
  log "tokenizing the prose corpus (prepare_data)"
  "$PREPARE" --path="$DATA/prose" --tokenizer=bpe --vocab_size=$VOCAB "${TOKENIZER_ARGS[@]}" \
    --split=document --val_fraction=$VAL_FRACTION \
    --max_bytes="$PROSE_MAX_BYTES" --cache_dir="$CACHE" > "$RUN/prepare_data.log" 2>&1
  log "prepare_data exit $?: $(grep -E '^tokens ' "$RUN/prepare_data.log")"
fi

# --- specs ---------------------------------------------------------------------------------------
SPECS="$RUN/specs"; mkdir -p "$SPECS"
cat > "$SPECS/results-prose.yaml" <<YAML
name: results-prose
description: every registry arch, $SIZE size, BPE-$VOCAB on the Debian prose corpus, $E2_TOKENS tokens, fair eval
data:
  path: prose                              # <data_root>/prose, from .results_data/prose.tar.xz
  tokenizer: bpe
  vocab_size: $VOCAB
$( ((VOCAB == 16384)) && echo "  tokenizer_model: prose-bpe16k.model      # trained by bench/results_data.sh (prepare_data)" ||
   echo "  tokenizer_sample_bytes: 1000000")
  split: document                          # the same validation documents for every trial
  val_fraction: $VAL_FRACTION
  max_bytes: $PROSE_MAX_BYTES
model:
  size: $SIZE
train:
  batch_size: 16
  optimizer: {name: adamw, lr: 1.0e-3, beta1: 0.9, beta2: 0.95, weight_decay: 0.1}
  schedule: {kind: cosine, warmup_steps: $E2_WARMUP, min_lr_ratio: 0.1}
  grad_clip: 1.0
  precision: auto                          # bf16 autocast on the GPU
  log_every: 50
budget:
  tokens: $E2_TOKENS                       # equal tokens for every arch, under one epoch
eval:
  protocol: fair                           # every position of the whole validation split
  every_steps: $E2_EVAL
  max_tokens: $VAL_TOKENS
resources: {device: $DEVICE, gpus_per_trial: 1}
checkpoint: {every_steps: 0, keep_last: 1}
variants:
  - name: standard
    model: {arch: standard}
  - name: worker-k4
    model: {arch: worker, worker: {interval: 4}}
  - name: sparse-depth
    model: {arch: sparse_depth, sparse_depth: {capacity: 0.5, dense_layers: 1}}
  - name: hybrid
    model: {arch: hybrid}
YAML
if [[ "$ZOO" == 1 ]]; then
  cat >> "$SPECS/results-prose.yaml" <<YAML
  - name: sqa                              # 8 heads of d/8: 4 query, 2 key/value heads
    model: {arch: sqa, n_heads: 8, sqa: {preset: sqa}}
  - name: mixed                            # one layer of each mixer
    model:
      arch: mixed
      n_layers: 4                          # one layer per mixer (the seed size's 4)
      mixers: [attn, sliced_attn, static_mlp, sqa]
      sliced_attention: {slice_len: $((SEQ / 4))}
      sqa: {preset: ssqa}
  - name: looped-2x2                       # 2 unique layers run twice
    model:
      arch: looped
      n_layers: 2
      looped: {loops: 2, input_injection: true, loop_embedding: true, inter_loop_linear: true}
  - name: matformer-joint                  # nested FFN widths trained together
    model: {arch: matformer, matformer: {train_mode: joint}}
  - name: attn-drop                        # attention only in the lower half of the layers
    model: {arch: attn_drop}
YAML
fi
cat >> "$SPECS/results-prose.yaml" <<YAML
baseline: standard
seeds: [$SEEDS]
max_restarts: 0                            # a deadline run: a failure is reported, not retried
priority: 0
YAML
CORE_TRIALS=$((4 * $(echo "$SEEDS" | tr ',' '\n' | grep -c .)))

wt_spec() {  # NAME PROTOCOL EVAL-LINES: the WorkerTransformer benchmark.py setup
  cat > "$SPECS/$1.yaml" <<YAML
name: $1
description: WorkerTransformer benchmark.py setup, $E1_STEPS steps, $2 evaluation protocol
data:
  path: tinyshakespeare/input.txt
  tokenizer: char                          # V = 65
  val_fraction: 0.1                        # the reference's 90/10 split by position
model:
  size: $SIZE                              # seed: d=256, L=4, h=4, FFN 1024, T=1024, dropout 0.1
train:
  batch_size: 16
  optimizer: {name: adamw, lr: 3.0e-4, beta1: 0.9, beta2: 0.999, eps: 1.0e-8, weight_decay: 0.01}
  schedule: {kind: constant, warmup_steps: 0}
  grad_clip: 1.0
  precision: auto                          # bf16 autocast (the reference: fp32)
  log_every: 100
budget:
  steps: $E1_STEPS
eval:
$3
resources: {device: $DEVICE, gpus_per_trial: 1}
checkpoint: {every_steps: 0, keep_last: 1}
variants:
  - name: standard
    model: {arch: standard}
  - name: worker-k4
    model: {arch: worker, worker: {interval: 4, conv_kernel: 3}}
baseline: standard
seeds: [$SEEDS]
max_restarts: 0
priority: 1                                # ahead of the rest of results-prose in phase B
YAML
}
wt_spec results-wt-seed seed "  protocol: seed
  every_steps: $E1_EVAL
  seed_batches: $SEED_BATCHES
  seed_final_batches: $SEED_FINAL"
wt_spec results-wt-fair fair "  protocol: fair
  every_steps: $E1_EVAL
  max_tokens: $VAL_TOKENS"
EXPERIMENTS=(results-prose results-wt-seed results-wt-fair)

# --- control plane -------------------------------------------------------------------------------
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
wait_file() { for _ in $(seq 1 100); do [[ -s "$1" ]] && return 0; sleep 0.1; done; return 1; }
"$COORDINATOR" --listen=127.0.0.1:0 --port_file="$RUN/grpc_port" --metrics_listen=127.0.0.1:0 \
  --metrics_port_file="$RUN/metrics_port" --db="$RUN/gauntlet.db" \
  > "$RUN/coordinator.log" 2>&1 &
PIDS+=($!)
wait_file "$RUN/grpc_port" || { echo "results.sh: coordinator did not start" >&2; cat "$RUN/coordinator.log" >&2; exit 1; }
GAUNTLET_COORDINATOR="127.0.0.1:$(cat "$RUN/grpc_port")"; export GAUNTLET_COORDINATOR

if [[ "$DEVICE" == gpu ]]; then
  NGPU=$(nvidia-smi -L | grep -c '^GPU ')
  nvidia-smi -L > "$RUN/gpus.txt"
  ((NGPU > 0)) || { echo "results.sh: nvidia-smi lists no GPU" >&2; exit 1; }
else
  NGPU=1; echo "cpu (dry run): $(nproc) cores" > "$RUN/gpus.txt"
fi
AGENTS=0
start_agent() {  # GPU-INDEX SHARE-INDEX
  local id="agent-g$1-s$2"
  local devices=(--gpus="$1" --cpu_slots=0)
  [[ "$DEVICE" == cpu ]] && devices=(--gpus=none --cpu_slots=1)
  "$WORKER" --coordinator="$GAUNTLET_COORDINATOR" --worker_id="$id" --address=127.0.0.1 \
    "${devices[@]}" --work_dir="$RUN/work/$id" --trainer="$TRAINER" --data_root="$DATA" \
    --cache_roots="$CACHE" --rendezvous_port_base=$((29500 + 100 * AGENTS)) \
    > "$RUN/$id.log" 2>&1 &
  PIDS+=($!)
  AGENTS=$((AGENTS + 1))
  log "agent $id started (pid $!)"
}
for ((g = 0; g < NGPU; ++g)); do start_agent "$g" 0; done
sleep 1

terminal_count() {  # EXPERIMENT [VARIANT-REGEX]: trials completed, failed or canceled
  "$CLI" describe "$1" 2>/dev/null |
    awk -v re="${2:-.}" '$2 ~ re && $4 ~ /^(completed|failed|canceled)$/ {n++} END {print n+0}'
}
experiment_done() {
  "$CLI" describe "$1" 2>/dev/null | grep -qE '^State: +(completed|failed|canceled)'
}
past_deadline() { (( SECONDS - START >= DEADLINE_S )); }

SUBMITTED=()
submit() {  # EXPERIMENT: a spec the coordinator refuses is reported and skipped
  if "$CLI" submit "$SPECS/$1.yaml" >> "$RUN/submit.log" 2>&1; then
    SUBMITTED+=("$1")
  else
    log "submit of $1 FAILED: $(tail -1 "$RUN/submit.log")"
  fi
}
log "submitting results-prose (phase A: one trial per GPU)"
submit results-prose
CORE='^(standard|worker-k4|sparse-depth|hybrid)$'
while [[ " ${SUBMITTED[*]} " == *" results-prose "* ]] &&
      (( $(terminal_count results-prose "$CORE") < CORE_TRIALS )) && (( SECONDS - START < PHASE_A_MAX_S )); do
  sleep 1
done
log "phase A over: $(terminal_count results-prose "$CORE") of $CORE_TRIALS core trials finished"

log "phase B: $TRIALS_PER_GPU trials per GPU; submitting the WorkerTransformer experiments"
date -u +%s > "$RUN/phase_b_unix"
for ((s = 1; s < TRIALS_PER_GPU; ++s)); do
  for ((g = 0; g < NGPU; ++g)); do start_agent "$g" "$s"; done
done
submit results-wt-seed
submit results-wt-fair
all_done() {
  local e
  for e in "${SUBMITTED[@]}"; do experiment_done "$e" || return 1; done
}
while ! all_done && ! past_deadline; do sleep 2; done
for e in "${SUBMITTED[@]}"; do
  if ! experiment_done "$e"; then
    log "deadline: cancelling what is left of $e"
    "$CLI" cancel "$e" --reason "bench/results.sh deadline (${DEADLINE_S}s)" >> "$RUN/submit.log" 2>&1
  fi
done
for _ in $(seq 1 30); do all_done && break; sleep 1; done  # cancelled trainers exit
log "training over"

# --- results -------------------------------------------------------------------------------------
R="$RUN/results"; mkdir -p "$R/events" "$R/logs"
for e in "${EXPERIMENTS[@]}"; do
  "$CLI" describe "$e" > "$R/$e.describe.txt" 2>&1
  for f in markdown csv json; do
    ext=$f; [[ $f == markdown ]] && ext=md
    "$CLI" compare "$e" --format "$f" > "$R/$e.compare.$ext" 2>> "$R/compare.stderr"
  done
done
# Every attempt's events and rank-0 log, named <trial>.attempt-<n>.
for dir in "$RUN"/work/*/*/attempt-*; do
  [[ -d "$dir" ]] || continue
  trial="$(basename "$(dirname "$dir")")"; attempt="$(basename "$dir")"
  [[ -s "$dir/events.jsonl" ]] && cp "$dir/events.jsonl" "$R/events/$trial.$attempt.jsonl"
  [[ -s "$dir/rank-0/stdout.log" ]] && cp "$dir/rank-0/stdout.log" "$R/logs/$trial.$attempt.log"
  echo "$trial $attempt $(basename "$(dirname "$(dirname "$dir")")")" >> "$R/placements.txt"
done
cp -r "$SPECS" "$R/specs"
cp "$RUN"/*.log "$RUN/gpus.txt" "$RUN/phase_b_unix" "$R/logs/" 2>/dev/null
{
  echo "date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "dry_run=$DRY_RUN"
  echo "device=$DEVICE"
  echo "gpus=$NGPU"
  echo "gpu_names=$(cut -d'(' -f1 "$RUN/gpus.txt" | sed -e 's/^GPU [0-9]*: //' -e 's/ *$//' | sort -u | paste -sd';')"
  echo "trials_per_gpu_phase_b=$TRIALS_PER_GPU"
  echo "deadline_s=$DEADLINE_S"
  echo "phase_a_max_s=$PHASE_A_MAX_S"
  echo "elapsed_s=$((SECONDS - START))"
  echo "e1_steps=$E1_STEPS"
  echo "e2_tokens=$E2_TOKENS"
  echo "seeds=$SEEDS"
  echo "command=$( [[ $DRY_RUN == 1 ]] && echo 'DRY_RUN=1 ')bash bench/results.sh"
  commit="$(git rev-parse HEAD 2>/dev/null)"  # the device's copy has no .git: the staged binaries'
  [[ "$DRY_RUN" != 1 && -s .device/COMMIT ]] && commit="$(cat .device/COMMIT) (staged binaries)"
  echo "git_commit=${commit:-unknown}"
} > "$R/env.txt"
tar -C "$RUN" -czf "$OUT/results.tar.gz" results
log "wrote $OUT/results.tar.gz ($(du -h "$OUT/results.tar.gz" | cut -f1))"
for e in "${EXPERIMENTS[@]}"; do echo "== $e"; cat "$R/$e.compare.md"; done
