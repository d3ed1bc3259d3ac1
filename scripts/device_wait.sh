#!/usr/bin/env bash
# Runs on the GPU machine after scripts/device_bench.sh: waits for the experiment and prints the
# comparison table, with the trainers' logs under $OUT.
set -uo pipefail
source scripts/device_env.sh
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
# The coordinator's store and the worker's run directories on the GPU machine.
RUN="${GAUNTLET_DEVICE_RUN:-${TMPDIR:-/tmp}/gauntlet-device}"
export GAUNTLET_COORDINATOR=127.0.0.1:50051
deadline=$((SECONDS + ${WAIT_SECONDS:-560}))
while ((SECONDS < deadline)); do
  if gauntlet describe gpu-compare-300s 2>/dev/null | grep -qE '^State: +(completed|failed|canceled)'; then
    break
  fi
  sleep 10
done
gauntlet describe gpu-compare-300s | tee "$OUT/describe.txt"
gauntlet compare gpu-compare-300s --format markdown | tee "$OUT/compare.md"
gauntlet compare gpu-compare-300s --format json > "$OUT/compare.json"
for f in $RUN/work/*/attempt-1/rank-0/stdout.log; do
  t="$(basename "$(dirname "$(dirname "$(dirname "$f")")")")"; cp "$f" "$OUT/$t.stdout.log"
done
tail -5 $RUN/worker.log
