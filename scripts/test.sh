#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, Qt tests under Xvfb.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m ruff check src tests benchmarks scripts
.venv/bin/python -m ruff format --check src tests benchmarks scripts
.venv/bin/npe2 validate napari-mpid
exec .venv/bin/python -m pytest -q --durations=15 "$@"
