#!/usr/bin/env bash
# Copy what a GPU session needs from ../shared into .device/ (git-ignored; ~45 MB),
# because a device call carries only the repository (64 MiB in all, the repository
# included). Then, in one device call:
#   run(command="bash benchmarks/gpu_session.sh", carry=[".device"], timeout_s=590)
# The evaluation images are only read by benchmarks there;
# never commit .device/.
set -euo pipefail
cd "$(dirname "$0")/.."
S=../shared
E=.device/eval/fmd_test_mix
rm -rf .device && mkdir -p "$E"/raw "$E"/gt "$E"/avg2 "$E"/avg4 "$E"/avg8 .device/eval/zstacks
cp "$S"/data/eval/fmd_test_mix/raw/*.png "$E"/raw/            # all 4 captures: the FMD stacks
cp "$S"/data/eval/fmd_test_mix/gt/*_1.png "$E"/gt/
for level in avg2 avg4 avg8; do cp "$S"/data/eval/fmd_test_mix/$level/*_1.png "$E"/$level/; done
cp "$S"/data/eval/zstacks/*.tif .device/eval/zstacks/
mkdir -p .device/eval/cset9 && cp "$S"/data/eval/cset9/*.png .device/eval/cset9/   # network_value.py cset9
du -sh .device
