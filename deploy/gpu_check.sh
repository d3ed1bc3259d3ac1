#!/usr/bin/env bash
# The GPU half of the deployment checks, for a GPU machine without podman (the device tool's):
#   stage  (here)  packs the -c opt binaries (CUDA trainer), the Debian libraries they need, Debian's
#                  Prometheus and the corpus into dist/gpucheck, with the list of libraries the
#                  CUDA worker image carries (read from the built image);
#   run    (there) copies exactly that library set out of the machine's torch 2.11.0+cu130 wheel
#                  (nothing else is on the library path), runs a coordinator, Prometheus and one
#                  worker on the GPU, trains configs/demo.yaml on the GPU, prints `compare`, and
#                  runs every Grafana panel query against that Prometheus, GPU-only panels included.
#   usage: deploy/gpu_check.sh stage BIN_DIR        (BIN_DIR as for build_images.sh --bin-dir)
#          deploy/gpu_check.sh run dist/gpucheck    (writes its report to $OUT if set)
set -euo pipefail
cd "$(dirname "$0")/.."

readonly SYSTEM_LIBS_RE='(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|librt\.|libpthread\.|libutil\.|libstdc\+\+|libgcc_s|libcuda\.)'

stage() {
  local bin_dir="$1" dest=dist/gpucheck
  rm -rf "$dest" && mkdir -p "$dest/pkg/bin" "$dest/pkg/lib" "$dest/data/tinyshakespeare"
  cp -L "$bin_dir/server/coordinator" "$bin_dir/worker/worker" "$bin_dir/cli/gauntlet" \
        /usr/bin/prometheus "$dest/pkg/bin/"
  cp -L "$bin_dir/trainer-cuda/trainer" "$dest/pkg/bin/trainer"
  local binary lib
  for binary in "$dest"/pkg/bin/*; do
    ldd "$binary" | awk '/=> \// { print $3 }' | while read -r lib; do
      [[ "$lib" =~ $SYSTEM_LIBS_RE || "$lib" == */site-packages/* ]] || cp -Ln "$lib" "$dest/pkg/lib/"
    done
  done
  XZ_OPT="-T0 -3" tar -C "$dest" -cJf "$dest/pkg.tar.xz" pkg && rm -rf "$dest/pkg"
  CONTAINERS_CONF="${CONTAINERS_CONF:-$HOME/.cache/gauntlet/containers.conf}" \
    podman run --rm --entrypoint /bin/ls "localhost/gauntlet/worker-cuda:$(bash deploy/image_version.sh "$bin_dir/server/coordinator")" \
    /opt/gauntlet/lib > "$dest/image_libs.txt"
  cp data/tinyshakespeare/input.txt "$dest/data/tinyshakespeare/"
  du -sh "$dest"
}

run() {
  local stage_dir
  stage_dir="$(cd "$1" && pwd)"
  local out="${OUT:-/tmp/gpucheck-out}" work=/tmp/gpucheck python="${GAUNTLET_PYTHON:-/opt/torch/.venv/bin/python3}"
  mkdir -p "$out" && rm -rf "$work" && mkdir -p "$work/imglib"
  tar -C "$work" -xJf "$stage_dir/pkg.tar.xz"
  local site name found
  site="$("$python" -c 'import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))')"
  # The CUDA image's library set, copied (not linked: LibTorch's RUNPATH is $ORIGIN-relative) from
  # the wheel, the Debian ones from the staged folder.
  while read -r name; do
    found="$(ls "$work/pkg/lib/$name" "$site/torch/lib/$name" "$site"/nvidia/*/lib/"$name" 2>/dev/null | head -1 || true)"
    [[ -n "$found" ]] || { echo "gpu_check: $name (in the image) is not in this machine's wheel" >&2; exit 1; }
    cp -L "$found" "$work/imglib/"
  done < "$stage_dir/image_libs.txt"
  export LD_LIBRARY_PATH="$work/imglib" NCCL_NVLS_ENABLE=0
  local bin="$work/pkg/bin"
  if ldd "$bin/trainer" | grep 'not found'; then echo "gpu_check: unresolved libraries" >&2; exit 1; fi
  ldd "$bin/trainer" | grep -E 'libtorch_cuda|libcudart|libnccl|libcublas' | tee "$out/trainer_ldd.txt"

  local pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
  # The coordinator and CLI are not in the worker image: they take the staged Debian libraries.
  LD_LIBRARY_PATH="$work/pkg/lib" "$bin/coordinator" --listen=127.0.0.1:0 --port_file="$work/port" --metrics_listen=127.0.0.1:0 \
    --metrics_port_file="$work/metrics_port" --db="$work/gauntlet.db" \
    --heartbeat_interval_seconds=0.5 > "$out/coordinator.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do [[ -s "$work/metrics_port" ]] && break; sleep 0.1; done
  local coordinator="127.0.0.1:$(cat "$work/port")" prom_port=19090
  mkdir -p "$work/prom" && cp -r deploy/prometheus/rules "$work/prom/"
  sed "s/127.0.0.1:9464/127.0.0.1:$(cat "$work/metrics_port")/" deploy/prometheus/prometheus.yml > "$work/prom/prometheus.yml"
  "$bin/prometheus" --config.file="$work/prom/prometheus.yml" --storage.tsdb.path="$work/prom/data" \
    --web.listen-address="127.0.0.1:$prom_port" > "$out/prometheus.log" 2>&1 &
  pids+=($!)
  "$bin/worker" --coordinator="$coordinator" --worker_id=gpu-w1 --address=127.0.0.1 --gpus=auto \
    --cpu_slots=0 --work_dir="$work/worker" --trainer="$bin/trainer" --data_root="$stage_dir/data" \
    > "$out/worker.log" 2>&1 &
  pids+=($!)
  local since
  since="$(date +%s)"
  # configs/demo.yaml on the GPU.
  { cat configs/demo.yaml; printf 'resources: {device: gpu, gpus_per_trial: 1}\n'; } > "$work/demo_gpu.yaml"
  local cli=(env LD_LIBRARY_PATH="$work/pkg/lib" "$bin/gauntlet" --coordinator "$coordinator")
  "${cli[@]}" submit "$work/demo_gpu.yaml" | tee "$out/report.txt"
  timeout 420 "${cli[@]}" watch demo > /dev/null || true
  { "${cli[@]}" describe demo
    "${cli[@]}" compare demo; } | tee -a "$out/report.txt"
  sleep 12
  "$python" deploy/tools/panel_check.py "http://127.0.0.1:$prom_port" deploy/grafana/dashboards \
    exp-1 "$since" --gpu 2>&1 | tee "$out/panels.txt"
  return "${PIPESTATUS[0]}"
}

case "${1:-}" in
  stage) stage "$2" ;;
  run) run "$2" ;;
  *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
