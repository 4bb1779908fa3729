"""How far the single-plane noise estimate is from the truth on the FMD noise ladder and the Z-stacks.

FMD: the 12 first captures at each level, centre 128x128 crops at (192, 192),
/255. The reference noise of a level is the raw capture's RMS difference to
gt divided by sqrt(k) for a mean of k captures (gt is the mean of 50
captures that include these, so comparing the averaged image with gt
directly would understate its noise). Z-stacks: RMS of noisy - clean on
planes 5, 20 and 30. Reported: estimated / reference noise level.

    python benchmarks/noise_estimate.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from napari_mpid.core.noise import estimate_noise

EVAL = Path(os.environ.get("MPID_EVAL_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "eval")
LEVELS = {"raw": 1, "avg2": 2, "avg4": 4, "avg8": 8, "avg16": 16}
CROP = (slice(192, 320), slice(192, 320))


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L")).astype(np.float64)[CROP] / 255.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json")
    args = parser.parse_args()
    root = EVAL / "fmd_test_mix"
    names = sorted(p.name for p in (root / "raw").glob("*_1.png"))
    out: dict[str, dict[str, float]] = {}
    for level, k in LEVELS.items():
        ratios = []
        for name in names:
            gt = _png(root / "gt" / name)
            reference = np.sqrt(np.mean((_png(root / "raw" / name) - gt) ** 2)) / np.sqrt(k)
            plane = _png(root / level / name)
            ratios.append(np.sqrt(np.mean(estimate_noise(plane).variance(plane))) / reference)
        out[level] = {"median": float(np.median(ratios)), "min": float(np.min(ratios)), "max": float(np.max(ratios))}
        print(
            f"FMD {level:5s} estimate / reference: median {np.median(ratios):.2f}, {min(ratios):.2f}-{max(ratios):.2f}"
        )
    for stack in ("neuron", "pollen"):
        noisy = tifffile.imread(EVAL / "zstacks" / f"{stack}_noisy.tif").astype(np.float64)
        clean = tifffile.imread(EVAL / "zstacks" / f"{stack}_clean.tif").astype(np.float64)
        ratios = [estimate_noise(noisy[z]).sigma / np.sqrt(np.mean((noisy[z] - clean[z]) ** 2)) for z in (5, 20, 30)]
        out[stack] = {"min": float(min(ratios)), "max": float(max(ratios))}
        print(f"{stack} estimate / truth, planes 5, 20, 30: {', '.join(f'{r:.2f}' for r in ratios)}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
