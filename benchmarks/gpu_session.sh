#!/usr/bin/env bash
# Everything this project measures on a GPU, in one device call of < 10 minutes,
# most important first (a call stopped at its limit still returns what is in $OUT).
# Prepare on the CPU machine first: bash scripts/device_prepare.sh
# The device image has torch, numpy, scipy, scikit-image, tifffile, tqdm and pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src MPID_EVAL_DIR=.device/eval
OUT=${OUT:-bench_out}; mkdir -p "$OUT"
PY=python3
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
# 1. CUDA-graph replay equals eager (and the rest of the core tests, on CUDA where they use it).
$PY -m pytest -q -p no:cacheprovider tests/core/test_cuda_graphs.py 2>&1 | tail -n 5 | tee "$OUT/tests.txt"
# 2. Speed: eager vs graphs, fp32 vs bf16, plane-by-plane vs stack mode, peak memory.
$PY benchmarks/speed.py --device cuda --sizes 256 512 1024 --iterations 50 --rounds 3 \
    --variants "eager fp32" "bf16 channels_last" "fp32 channels_last graph" "bf16 channels_last graph" \
    --stacks 8 32 --stack-variants "bf16 channels_last" "bf16 channels_last graph" --json "$OUT/speed.json" 2>&1 | tee "$OUT/speed.txt"
# 3. Quality on full FMD images (12 first captures): ours vs authors vs random, both presets.
R=.device/ckpts/imgnet_80_95_singlechannel_skip.pth
for m in real-noise "$R" random-init:1:single; do
  tag=$(basename "$m" .pth | tr ':' '_')
  for p in fast quality; do
    $PY benchmarks/eval_quality.py fmd --model "$m" --preset $p --device cuda --json "$OUT/fmd_${p}_${tag}.json" 2>&1 | tail -n 1
  done
done
# 4. CSet9 sigma 25, fast, full images.
for m in pixel-independent .device/ckpts/imgnet_30_multchannel_skip.pth; do
  $PY benchmarks/eval_quality.py cset9 --model "$m" --mask-ratio 0.3 --device cuda --json "$OUT/cset9_fast_$(basename "$m" .pth).json" 2>&1 | tail -n 1
done
