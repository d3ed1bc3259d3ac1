# Sourced by the bench/*.sh scripts: finds the binaries and the corpus, and exports them for
# bench/multigpu_bench.py. Precedence: GAUNTLET_*_BIN already set (tests) > .device/bin on PATH
# (the GPU machine, after `source .device/device_env.sh`) > bazel-bin/ (this machine).
bench_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_gauntlet_pick() {  # VAR name-on-PATH bazel-path
  local var="$1" name="$2" bazel_path="$3" found
  [[ -n "${!var:-}" ]] && return
  found="$(command -v "$name" 2>/dev/null || true)"
  if [[ -n "$found" && "$found" == "$bench_root/.device/bin/"* ]]; then
    export "$var=$found"
  elif [[ -x "$bench_root/bazel-bin/$bazel_path" ]]; then
    export "$var=$bench_root/bazel-bin/$bazel_path"
  fi
}
# .device/ may exist here too (staged CUDA builds), but only the GPU machine has /opt/torch.
if [[ -d /opt/torch/.venv && -d "$bench_root/.device/bin" && ":$PATH:" != *":$bench_root/.device/bin:"* ]]; then
  # The staged binaries need their libraries; device_env.sh also sets NCCL_NVLS_ENABLE=0.
  pushd "$bench_root" >/dev/null && source .device/device_env.sh && popd >/dev/null
fi
_gauntlet_pick GAUNTLET_TRAINER_BIN trainer trainer/trainer
_gauntlet_pick GAUNTLET_WORKER_BIN worker worker/worker
_gauntlet_pick GAUNTLET_COORDINATOR_BIN coordinator server/coordinator
_gauntlet_pick GAUNTLET_GAUNTLET_BIN gauntlet cli/gauntlet
export NCCL_NVLS_ENABLE=0
# Default corpus: the carried copy on the GPU machine, the repository's data/ here.
if [[ -z "${GAUNTLET_BENCH_DATA:-}" ]]; then
  for candidate in "$bench_root/.device/data/tinyshakespeare/input.txt" \
                   "$bench_root/data/tinyshakespeare/input.txt"; do
    if [[ -f "$candidate" ]]; then export GAUNTLET_BENCH_DATA="$candidate"; break; fi
  done
fi
# Any python3 works (stdlib only); the GPU machine's is the torch venv's.
BENCH_PYTHON="$(command -v python3 || echo /opt/torch/.venv/bin/python3)"
