#!/usr/bin/env bash
# Copy what a GPU session needs from ../shared into .device/ (git-ignored; ~20 MB),
# because a device call carries only the repository. Then, in one device call:
#   run(command="bash benchmarks/gpu_session.sh", carry=[".device"], timeout_s=590)
# Evaluation images and the authors' checkpoints are only read by benchmarks there;
# never commit .device/.
set -euo pipefail
cd "$(dirname "$0")/.."
S=../shared
rm -rf .device && mkdir -p .device/eval/fmd_test_mix/raw .device/eval/fmd_test_mix/gt .device/ckpts
cp "$S"/data/eval/fmd_test_mix/raw/*_1.png .device/eval/fmd_test_mix/raw/
cp "$S"/data/eval/fmd_test_mix/gt/*_1.png .device/eval/fmd_test_mix/gt/
cp -r "$S"/data/eval/cset9 .device/eval/
cp "$S"/anchors/mpi_official/ckpts/imgnet_80_95_singlechannel_skip.pth "$S"/anchors/mpi_official/ckpts/imgnet_30_multchannel_skip.pth .device/ckpts/
du -sh .device
