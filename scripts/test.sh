#!/usr/bin/env bash
# Sets up the machine and runs every test on CPU. Exits non-zero when any test fails.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

log="$(mktemp)"
bazel test //... --test_summary=short --jobs=2 --local_test_jobs=2 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -cE '^//\S+\s+(\(cached\) )?PASSED' "$log" || true)
failed=$(grep -cE '^//\S+\s+(FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD)' "$log" || true)
rm -f "$log"
echo "${passed} passed, ${failed} failed"
exit "$status"
