#!/usr/bin/env bash
# Set up (if needed) and run the main job. With a display: napari with the
# "Zero-shot denoise" widget docked and the synthetic sample loaded. Without
# one (or with --cli): the CLI demo, which denoises the same sample, prints
# PSNR against its clean version and writes TIFFs to demo_output/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${1:-}" = "--cli" ]; then
    shift
elif [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    exec .venv/bin/python -m napari_mpid._launch "$@"
fi
exec .venv/bin/napari-mpid demo -o demo_output "$@"
