#!/usr/bin/env bash
# Prints the version a coordinator binary reports (its gauntlet_build_info metric): the tag
# deploy/build_images.sh gives every image and deploy/k8s/base/kustomization.yaml must name.
# Starts the coordinator on loopback ports it picks, with a throwaway store, for about a second.
#   usage: deploy/image_version.sh COORDINATOR_BINARY
set -euo pipefail
binary="$1"
dir="$(mktemp -d)"
"$binary" --listen=127.0.0.1:0 --port_file="$dir/port" --metrics_listen=127.0.0.1:0 \
  --metrics_port_file="$dir/metrics_port" --db="$dir/version.db" > "$dir/log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do [[ -s "$dir/metrics_port" ]] && break; sleep 0.1; done
[[ -s "$dir/metrics_port" ]] || { cat "$dir/log" >&2; echo "image_version: $binary did not start" >&2; exit 1; }
version="$(curl -sf "http://127.0.0.1:$(cat "$dir/metrics_port")/metrics" |
  sed -n 's/^gauntlet_build_info{.*version="\([^"]*\)".*/\1/p' | head -1)"
[[ -n "$version" ]] || { echo "image_version: no gauntlet_build_info in $binary's metrics" >&2; exit 1; }
echo "$version"
