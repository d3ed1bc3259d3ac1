#!/usr/bin/env bash
# The kustomize base must not load files from outside its directory (so it renders without
# --load-restrictor), but the example specs live in configs/ and the dashboards in deploy/grafana/.
# This copies them into deploy/k8s/base/files/; tests/deploy (k8s_manifests_test) runs it with
# --check, which fails on any copy that differs from its source, so the copies cannot drift.
#   usage: deploy/k8s/sync_base_files.sh [--check]
set -euo pipefail
cd "$(dirname "$0")/../.."
readonly DEST=deploy/k8s/base/files
readonly SOURCES=(
  configs/ci_tiny.yaml
  configs/seed_reproduction.yaml
  configs/seed_protocol.yaml
  configs/scaled_up.yaml
  deploy/grafana/dashboards/gauntlet-training.json
  deploy/grafana/dashboards/gauntlet-cluster.json
)
check=0; [[ "${1:-}" == "--check" ]] && check=1
stale=0
for source in "${SOURCES[@]}"; do
  copy="$DEST/$(basename "$source")"
  if ((check)); then
    cmp -s "$source" "$copy" || { echo "out of sync: $copy differs from $source" >&2; stale=1; }
  else
    cp "$source" "$copy"
  fi
done
# A copy whose source is gone (or no longer listed) is stale too.
for copy in "$DEST"/*; do
  name="$(basename "$copy")"
  printf '%s\n' "${SOURCES[@]}" | grep -q "/$name\$" ||
    { echo "stale: $copy has no source in $0" >&2; stale=1; }
done
if ((stale)); then echo "run deploy/k8s/sync_base_files.sh" >&2; exit 1; fi
