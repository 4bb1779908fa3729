#!/usr/bin/env bash
# Short GPU session (342 s of device time were left): tests on CUDA, speed, one stack timing.
set -uo pipefail
export PYTHONPATH=src MPID_EVAL_DIR=.device/eval
OUT=${OUT:-bench_out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/core/test_cuda_graphs.py tests/core/test_context.py 2>&1 | tail -n 4 | tee "$OUT/tests.txt"
timeout 90 python3 benchmarks/speed.py --device cuda --sizes 256 512 --iterations 30 --rounds 2 \
    --variants "eager fp32" "bf16 channels_last" "fp32 channels_last graph" "bf16 channels_last graph" \
    --stacks 8 --stack-variants "bf16 channels_last graph" --json "$OUT/speed.json" 2>&1 | tail -n 30 | tee "$OUT/speed.txt"
timeout 70 python3 benchmarks/stacks.py pollen --preset auto --device cuda --threads 8 --json "$OUT/pollen_gpu_auto.json" 2>&1 | tail -n 6 | tee "$OUT/pollen.txt"
