#!/usr/bin/env bash
# The photo model's figures, as the README's model card reports them. Needs data/ as
# benchmarks/split_photos.py and benchmarks/make_photo_sets.py make it, and the runs named below.
#   bash benchmarks/photo_report.sh CHECKPOINT_OR_NAME [PHOTOS_VAL_LIMIT]
set -euo pipefail
model=${1:-photo}
limit=${2:-}
sweep() { python benchmarks/photo_sweep.py "$@"; }
echo "== validation split of photos-train (data/photos-val), colorize path, default settings"
if [[ "$model" == *.* ]]; then flag=(--checkpoint "$model"); else flag=(--model "$model"); fi
colorcli eval "${flag[@]}" --dataset data/photos-val --full-res --json ${limit:+--limit $limit}
echo "== held-out 38 (data/photos-holdout + data/photos-debian), over --saturation, both models"
sweep data/photos-held38 --checkpoints "$model",cifar10 --saturations 0.5,0.67,0.8,1.0,1.2,1.5 --keep-tile-saturation
