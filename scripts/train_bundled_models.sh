#!/usr/bin/env bash
# Reproduce the bundled models from ../shared/data/pretrain (never from data/eval).
# The shipped files were trained with exactly these settings on 2 CPU cores of this
# project's machines, one thread per model (OMP_NUM_THREADS=1). With a GPU, add
# --device cuda; to train longer, raise --steps (the cosine schedule spans --steps).
# Then: python scripts/bundle_model.py <checkpoint> <name> "<summary>".
set -euo pipefail
cd "$(dirname "$0")/.."
D=../shared/data/pretrain
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
.venv/bin/napari-mpid pretrain $D/Train400 $D/BSD200 $D/T91 $D/W2S_clean_train -o train/real_noise.pt \
    --channels 1 --mask single --mask-ratio-min 0.80 --mask-ratio-max 0.95 \
    --crop-size 64 --batch-size 16 --steps 3500 --validate-every 250 --checkpoint-every 250 --device cpu --seed 0
.venv/bin/napari-mpid pretrain $D/BSD200 $D/T91 $D/Train400 -o train/pixel_independent.pt \
    --channels 3 --mask multi --mask-ratio-min 0.30 --mask-ratio-max 0.30 \
    --crop-size 64 --batch-size 16 --steps 1200 --validate-every 200 --checkpoint-every 200 --device cpu --seed 0
