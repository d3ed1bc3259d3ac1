#!/usr/bin/env bash
# Builds every Gauntlet container image with podman, from a Debian base made locally with
# debootstrap (no image registry is involved), and prints their sizes:
#   localhost/gauntlet/coordinator:<ver>   coordinator daemon + gauntlet CLI
#   localhost/gauntlet/cli:<ver>           gauntlet CLI alone
#   localhost/gauntlet/worker-cpu:<ver>    worker agent + CPU trainer + libtorch_cpu
#   localhost/gauntlet/worker-cuda:<ver>   worker agent + CUDA trainer + the torch 2.11 CUDA libraries
#   localhost/gauntlet/prometheus:<ver>    Debian's Prometheus with deploy/prometheus baked in (demo)
# <ver> is the version the coordinator reports (deploy/image_version.sh), so the tags follow the code.
#
# Usage: deploy/build_images.sh [--bin-dir DIR] [--images LIST] [--tag TAG] [--rebuild-base]
#   --bin-dir DIR   take the binaries from DIR (laid out like bazel-bin: server/coordinator,
#                   cli/gauntlet, worker/worker, trainer/trainer, and trainer-cuda/trainer for the
#                   CUDA trainer) instead of running `bazel build -c opt`
#   --images LIST   comma-separated subset of: coordinator,cli,worker-cpu,worker-cuda,prometheus
#   GAUNTLET_DEBIAN_MIRROR overrides the Debian mirror debootstrap uses (default: this machine's
#   apt source). Podman runs with runc and a containers.conf without default ulimits unless
#   CONTAINERS_CONF is already set (docs/DEPLOY.md says why).
set -euo pipefail

readonly ALL_IMAGES="coordinator,cli,worker-cpu,worker-cuda,prometheus"
readonly SUITE=bookworm
readonly BASE_REPO=localhost/gauntlet/debian
readonly CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/gauntlet"

# Libraries every image takes from the base (glibc and the GCC runtime of Debian 12, the release the
# binaries are built on) and the NVIDIA driver's, which the container runtime mounts on GPU nodes.
readonly BASE_LIBS_RE='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libresolv|libutil|libstdc\+\+|libgcc_s|libcuda|libnvidia-)([-._]|$)'

log() { echo "build_images: $*" >&2; }
die() { log "$*"; exit 1; }

podman_env() {
  if [[ -z "${CONTAINERS_CONF:-}" ]]; then
    mkdir -p "$CACHE"
    # crun fails on this build machine's hybrid cgroups and the default ulimit set cannot be
    # applied here; runc with no default ulimits works (../docs/DEPLOY.md, "Podman settings").
    printf '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n' > "$CACHE/containers.conf"
    export CONTAINERS_CONF="$CACHE/containers.conf"
  fi
}

# The first Debian URI of this machine's apt sources (deb822 or one-line format).
debian_mirror() {
  if [[ -n "${GAUNTLET_DEBIAN_MIRROR:-}" ]]; then echo "$GAUNTLET_DEBIAN_MIRROR"; return; fi
  local uri
  uri="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && $2 ~ /debian\/?$/ { print $2; exit }')"
  if [[ -z "$uri" ]]; then
    uri="$(cat /etc/apt/sources.list 2>/dev/null | awk '$1 == "deb" && $2 ~ /^http/ && $3 == "'$SUITE'" { print $2; exit }')"
  fi
  [[ -n "$uri" ]] || die "no Debian mirror in /etc/apt; set GAUNTLET_DEBIAN_MIRROR"
  echo "$uri"
}

# A minimal Debian 12 rootfs (debootstrap minbase) without docs, man pages, locales and apt lists,
# imported as $BASE_REPO:<debian_version>-minbase. Reused while it exists.
ensure_base() {
  local existing
  existing="$(podman images --format '{{.Repository}}:{{.Tag}}' --filter "reference=$BASE_REPO" | head -1)"
  if [[ -n "$existing" && "$rebuild_base" == 0 ]]; then BASE_IMAGE="$existing"; return; fi
  local rootfs
  rootfs="$(mktemp -d)"
  log "debootstrap --variant=minbase $SUITE from $(debian_mirror) (about a minute)"
  debootstrap --variant=minbase "$SUITE" "$rootfs" "$(debian_mirror)" > "$rootfs.log" 2>&1 ||
    { tail -20 "$rootfs.log" >&2; die "debootstrap failed (log: $rootfs.log)"; }
  rm -rf "$rootfs"/usr/share/{doc,man,info,locale}/* "$rootfs"/var/cache/apt/* \
         "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*
  BASE_IMAGE="$BASE_REPO:$(cat "$rootfs/etc/debian_version")-minbase"
  tar -C "$rootfs" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs" "$rootfs.log"
  log "base image $BASE_IMAGE"
}

# Copies BINARY... into DEST/bin and every library `ldd` resolves for them into DEST/lib, less
# the base's (BASE_LIBS_RE). LD_LIBRARY_PATH (set by the caller) finds the wheel's libraries.
stage_binaries() {
  local dest="$1"; shift
  mkdir -p "$dest/bin" "$dest/lib"
  local binary name path
  for binary in "$@"; do
    [[ -x "$binary" ]] || die "$binary is not an executable"
    cp -L "$binary" "$dest/bin/"
    chmod 0755 "$dest/bin/$(basename "$binary")"
    while read -r name path; do
      [[ "$name" =~ $BASE_LIBS_RE ]] && continue
      [[ "$path" == "not" || -z "$path" ]] && die "$binary needs $name, which ldd cannot resolve"
      cp -L "$path" "$dest/lib/$name"
    done < <(ldd "$binary" | awk '/=>/ { print $1, $3 }')
  done
}

# Libraries LibTorch opens with dlopen, which ldd cannot see (CUDA image only): cuDNN's engine and
# sub-libraries, and NVRTC (through libcaffe2_nvrtc) with its builtins for runtime-compiled
# kernels. Not copied: cuSOLVER and libtorch_cuda_linalg (torch.linalg only), cuFile, profilers.
stage_cuda_dlopen_libs() {
  local dest="$1" nvidia="$2" torch_lib="$3"
  cp -L "$nvidia"/cudnn/lib/libcudnn*.so.* "$dest/lib/"
  cp -L "$nvidia"/cu13/lib/libnvrtc.so.* "$nvidia"/cu13/lib/libnvrtc-builtins.so.* "$dest/lib/"
  cp -L "$torch_lib/libcaffe2_nvrtc.so" "$dest/lib/"
}

build_image() {
  local name="$1" context="$2"
  local started=$SECONDS
  podman build --quiet --layers --format docker --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    -f "$repo/deploy/docker/$name.Containerfile" -t "localhost/gauntlet/$name:$tag" "$context" >/dev/null
  log "built localhost/gauntlet/$name:$tag in $((SECONDS - started)) s"
}

main() {
  local bin_dir="" images="$ALL_IMAGES"
  tag="" rebuild_base=0 contexts=""
  while (($#)); do
    case "$1" in
      --bin-dir) bin_dir="$(cd "$2" && pwd)"; shift ;;
      --images) images="$2"; shift ;;
      --tag) tag="$2"; shift ;;
      --rebuild-base) rebuild_base=1 ;;
      *) sed -n '2,21p' "$0" >&2; exit 2 ;;
    esac
    shift
  done
  repo="$(cd "$(dirname "$0")/.." && pwd)"
  cd "$repo"
  local image
  for image in ${images//,/ }; do
    [[ ",$ALL_IMAGES," == *",$image,"* ]] || die "unknown image $image (one of $ALL_IMAGES)"
  done
  want() { [[ ",$images," == *",$1,"* ]]; }
  for tool in podman debootstrap ldd; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/setup.sh installs it)"
  done
  podman_env

  local python torch_lib nvidia
  python="${GAUNTLET_PYTHON:-python3}"
  torch_lib="$("$python" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
  nvidia="$(dirname "$(dirname "$torch_lib")")/nvidia"

  local needs_binaries=0
  [[ ",$images," =~ ,(coordinator|cli|worker-cpu|worker-cuda), || -z "$tag" ]] && needs_binaries=1
  if [[ -z "$bin_dir" && "$needs_binaries" == 1 ]]; then
    bin_dir="$CACHE/image-binaries"
    rm -rf "$bin_dir"; mkdir -p "$bin_dir"
    log "bazel build -c opt (CPU binaries)"
    bazel build -c opt //server:coordinator //cli:gauntlet //worker:worker //trainer:trainer
    local out
    out="$(bazel info -c opt bazel-bin)"
    for f in server/coordinator cli/gauntlet worker/worker trainer/trainer; do
      mkdir -p "$bin_dir/$(dirname "$f")"; cp -L "$out/$f" "$bin_dir/$f"
    done
    if want worker-cuda; then
      # The CUDA build rewrites the same bazel-bin, so the CPU binaries are copied out first.
      log "bazel build -c opt --config=cuda //trainer:trainer"
      bazel build -c opt --config=cuda //trainer:trainer
      mkdir -p "$bin_dir/trainer-cuda"
      cp -L "$(bazel info -c opt --config=cuda bazel-bin)/trainer/trainer" "$bin_dir/trainer-cuda/trainer"
    fi
  fi
  if [[ -z "$tag" ]]; then
    tag="$(bash "$repo/deploy/image_version.sh" "$bin_dir/server/coordinator")"
  fi
  [[ "$tag" =~ ^[0-9A-Za-z_.-]+$ ]] || die "bad tag '$tag'"

  ensure_base
  contexts="$(mktemp -d)"
  trap 'rm -rf "$contexts"' EXIT
  if want coordinator; then
    stage_binaries "$contexts/coordinator" "$bin_dir/server/coordinator" "$bin_dir/cli/gauntlet"
    build_image coordinator "$contexts/coordinator"
  fi
  if want cli; then
    stage_binaries "$contexts/cli" "$bin_dir/cli/gauntlet"
    build_image cli "$contexts/cli"
  fi
  if want worker-cpu; then
    LD_LIBRARY_PATH="$torch_lib" stage_binaries "$contexts/worker-cpu" \
      "$bin_dir/worker/worker" "$bin_dir/trainer/trainer"
    build_image worker-cpu "$contexts/worker-cpu"
  fi
  if want worker-cuda; then
    [[ -x "$bin_dir/trainer-cuda/trainer" ]] || die "no CUDA trainer at $bin_dir/trainer-cuda/trainer"
    LD_LIBRARY_PATH="$torch_lib:$nvidia/cu13/lib:$nvidia/nccl/lib:$nvidia/cudnn/lib:$nvidia/cusparselt/lib:$nvidia/nvshmem/lib" \
      stage_binaries "$contexts/worker-cuda" "$bin_dir/worker/worker" "$bin_dir/trainer-cuda/trainer"
    stage_cuda_dlopen_libs "$contexts/worker-cuda" "$nvidia" "$torch_lib"
    build_image worker-cuda "$contexts/worker-cuda"
  fi
  if want prometheus; then
    mkdir -p "$contexts/prometheus"
    cp -rL deploy/prometheus/prometheus.yml deploy/prometheus/rules "$contexts/prometheus/"
    build_image prometheus "$contexts/prometheus"
  fi

  log "sizes:"
  for image in ${images//,/ }; do
    printf '  %-40s %s\n' "localhost/gauntlet/$image:$tag" \
      "$(podman image inspect --format '{{.Size}}' "localhost/gauntlet/$image:$tag" |
         awk '{ printf "%.0f MB", $1 / 1e6 }')" >&2
  done
  printf '  %-40s %s\n' "$BASE_IMAGE (base)" \
    "$(podman image inspect --format '{{.Size}}' "$BASE_IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }')" >&2
}

main "$@"
