#!/usr/bin/env bash
set -uo pipefail
export PYTHONPATH=src MPID_EVAL_DIR=.device/eval
OUT=${OUT:-bench_out}; mkdir -p "$OUT"
timeout 50 python3 benchmarks/stacks.py neuron --preset auto --device cuda --threads 8 --json "$OUT/neuron_gpu_auto.json" 2>&1 | tail -n 5
timeout 50 python3 benchmarks/stacks.py pollen --preset auto --context 2 --iterations 600 --device cuda --threads 8 --json "$OUT/pollen_gpu_c2_T600.json" 2>&1 | tail -n 2
timeout 40 python3 benchmarks/stacks.py pollen --preset auto --context 0 --device cuda --threads 8 --json "$OUT/pollen_gpu_c0.json" 2>&1 | tail -n 2
