#!/usr/bin/env bash
# What this project measures on a GPU, in one device call of < 10 minutes, most
# important first. Every step has its own time limit, writes its log under bench_out/
# and is packed into $OUT/gpu_results.tar at once, so a call stopped at its limit
# still returns every finished step (a call returns at most 8 files).
# Prepare on the CPU machine first: bash scripts/device_prepare.sh, then
#   run(command="bash benchmarks/gpu_session.sh", carry=[".device"], timeout_s=590)
# The device image has torch, numpy, scipy, scikit-image, tifffile and pytest.
# DEVICE=cpu LIMIT=1 bash benchmarks/gpu_session.sh is a dry run of the script here.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src MPID_EVAL_DIR=.device/eval PYTHONUNBUFFERED=1
DEVICE=${DEVICE:-cuda}
T=${THREADS:-8}
R=bench_out/gpu; mkdir -p "$R"
OUT=${OUT:-bench_out/gpu_out}; mkdir -p "$OUT"
LIM=(); [ -n "${LIMIT:-}" ] && LIM=(--limit "$LIMIT")
pack() { tar -cf "$OUT/gpu_results.tar" -C "$R" .; }
step() {  # step SECONDS NAME COMMAND...: run with a time limit, log to $R/NAME.txt
  local seconds=$1 name=$2; shift 2
  echo "== $name ($(date -u +%T))"
  timeout "$seconds" "$@" 2>&1 | tee "$R/$name.txt"
  pack
}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true; python3 -c "import torch; print(torch.__version__)"; nproc; } | tee "$R/machine.txt"
pack
# 1. The core tests that use CUDA when it is there (CUDA graphs, also of the held-out
#    filling of the auto preset; context filling; stack mode).
step 100 tests python3 -m pytest -q -p no:cacheprovider tests/core/test_cuda_graphs.py \
    tests/core/test_context.py tests/core/test_stacked.py tests/core/test_network_use.py
# 2. What the network adds and costs (docs/benchmarks.md, "The network's value and cost"):
#    FMDD's 12 first full images at defaults (the network decision; target <= 1 s per image
#    on a GPU; the mix's NL-means and bands run on the CPU threads: 1.4 s per 512x512 plane on
#    one thread of the 2-core machine), with the network on every plane, and the paper's fast
#    preset; then CSet9, where the network runs by default.
step 150 fmdd_network python3 benchmarks/network_value.py fmdd --captures 1 --variants auto always fast \
    --device "$DEVICE" --threads "$T" "${LIM[@]}" --json "$R/network_value_fmdd12.json"
step 60 cset9_network python3 benchmarks/network_value.py cset9 --variants auto never fast --device "$DEVICE" \
    --threads "$T" "${LIM[@]}" --json "$R/network_value_cset9.json"
# 2b. Abandoning a filling that earns nothing (ABANDON_AT) with CUDA graphs: the check runs
#    between graph replays; its figures on the CPU are in docs/benchmarks.md.
step 90 abandon python3 benchmarks/network_abandon.py cset9 sample stack --at 0 0.5 --device "$DEVICE" \
    --threads "$T" --json "$R/network_abandon.json"
# 3. The noise ladder with the network on every crop (the defaults skip it on FMD).
step 80 ladder_always python3 benchmarks/network_value.py ladder --variants auto always --device "$DEVICE" \
    --threads "$T" "${LIM[@]}" --json "$R/network_value_ladder.json"
# 4. The stacks at defaults (time and PSNR), then with the network on every series.
for s in neuron pollen; do
  step 60 "stacks_$s" python3 benchmarks/stacks.py $s --preset auto --device "$DEVICE" --threads "$T" \
      --json "$R/stacks_${s}_auto.json"
  step 60 "stacks_${s}_always" python3 benchmarks/stacks.py $s --preset auto --network always --device "$DEVICE" \
      --threads "$T" --json "$R/stacks_${s}_always.json"
done
# 5. Speed rows not measured yet: stacks of 32 at 256/512 (a stack of 32 planes of 1024x1024
#    in one batch does not fit 80 GB), single 1024x1024 planes.
step 70 speed python3 benchmarks/speed.py --device "$DEVICE" --sizes 256 512 --iterations 30 --rounds 2 \
    --variants "fp32 channels_last graph" --stacks 32 --stack-variants "fp32 channels_last graph" \
    --json "$R/speed.json"
step 40 speed_1024 python3 benchmarks/speed.py --device "$DEVICE" --sizes 1024 --iterations 30 --rounds 2 \
    --variants "fp32 channels_last graph" "bf16 channels_last graph" --json "$R/speed_1024.json"
echo "== done ($(date -u +%T))"
