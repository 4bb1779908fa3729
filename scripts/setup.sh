#!/usr/bin/env bash
# Create .venv with napari-mpid and everything its tests and the napari demo need.
# Idempotent: a second run only checks. Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Headless Qt needs an X server (Xvfb) and the xcb libraries; offscreen Qt
# alone breaks napari's OpenGL canvas.
if command -v apt-get >/dev/null 2>&1 && ! command -v Xvfb >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 \
        libxcb-xinerama0 libxcb-randr0 libxcb-shape0 libxkbcommon-x11-0 libxcb-cursor0 libgl1 libegl1 \
        libdbus-1-3 libfontconfig1 >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch 2.13.0 is the CPU build this workplace keeps on disk; elsewhere pip
# picks the build for your platform (CUDA on Linux).
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/python -m pip install -q "torch==2.13.0" || .venv/bin/python -m pip install -q "torch>=2.2,<2.15"
fi
.venv/bin/python -m pip install -q -e ".[testing]"
