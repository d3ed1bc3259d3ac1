#!/usr/bin/env bash
# Runs on the build machine: packs what bench/results.sh needs on the GPU machine, which has
# neither the Debian documentation packages nor the time to train a tokenizer, into
# .results_data/ (ignored by git; carry it with the device call, ~21 MB):
#   prose.tar.xz          the English prose corpus written by trainer/data/prepare_prose.py
#   prose-bpe16k.model    SentencePiece BPE, 16,384 pieces, trained by prepare_data on it with
#                         the spec's options (document split, val_fraction 0.02, 16 MiB sample)
#   usage: bash bench/results_data.sh PROSE_DIR    (the --out directory of prepare_prose.py)
set -euo pipefail
cd "$(dirname "$0")/.."
prose="${1:?usage: bench/results_data.sh PROSE_DIR (written by trainer/data/prepare_prose.py)}"
prose="$(cd "$prose" && pwd)"
out="$PWD/.results_data"
mkdir -p "$out"
bazel build -c opt //trainer/data:prepare_data
cache="$(mktemp -d)"
trap 'rm -rf "$cache"' EXIT
bazel-bin/trainer/data/prepare_data --path="$prose" --tokenizer=bpe --vocab_size=16384 \
  --split=document --val_fraction=0.02 --cache_dir="$cache" | tail -4
models=("$cache"/*.model)
((${#models[@]} == 1)) || { echo "expected one trained .model in $cache" >&2; exit 1; }
cp "${models[0]}" "$out/prose-bpe16k.model"
# The directory is named prose inside the tarball: results.sh extracts it into its data root.
tar -C "$(dirname "$prose")" -cf - --transform="s,^$(basename "$prose"),prose," \
  --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 "$(basename "$prose")" |
  xz -6 -T0 > "$out/prose.tar.xz.partial"
mv "$out/prose.tar.xz.partial" "$out/prose.tar.xz"
du -sh "$out"/*
