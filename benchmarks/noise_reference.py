"""The noise estimate against FMD's gt, with and without each capture's own brightness.

Not a test: a measurement for docs/benchmarks.md ("The noise variance
against a brightness-matched reference").

Issue 20 asks for the estimated noise variance within 15 % of the value
measured against gt. FMD's raw captures differ from gt (the mean of 50
captures) by a gain of 0.84-1.14 in brightness, so ``mean((raw - gt)^2)``
holds that mismatch beside the noise. Three references per image:

naive
    ``mean((raw - gt)^2) / k`` for the mean of k captures (avg-k);
matched
    the same after a gain and an offset of gt fitted to the raw capture by
    least squares (what is left is the capture's noise), over k;
direct
    the image's own residual: gt's gain and offset fitted to the avg-k
    image itself, the residual's variance divided by ``1 - k / 50``. FMD's
    avg-k images average k of the 50 captures whose mean is gt, so gt
    shares their noise: the residual keeps ``(1 - k / 50)`` of the
    image's noise variance (the ladder run prints each configuration's
    residual ratio raw : avg8, ``(1 - 1/50) / (1/8 - 1/50)`` = 9.3 if gt
    holds the averaged captures, 7.0 if not; where the estimate is trusted,
    Confocal_FISH_1 and Confocal_MICE_1, it reads 9.2 and 9.4). The first two assume an avg-k image holds
    ``1 / k`` of the raw capture's noise; where it does not (up to 1.9x
    apart on Confocal_BPAE_R_1 avg8) only the direct reference measures
    the noise the estimate is asked for.

Reported: the estimate (the mean over the plane of
:func:`~napari_mpid.core.noise.estimate_noise`'s noise-level line) over
each reference, and how many images lie outside 15 %. Sets: ``fmdd`` (full
512x512 raw images) and ``ladder`` (the 128x128 centre crops at raw, avg2,
avg4, avg8). ``--captures`` 1 is the development subset.

    python benchmarks/noise_reference.py fmdd --captures 1 2 3 4 --json benchmarks/results/noise_reference_fmdd.json
    python benchmarks/noise_reference.py ladder --captures 1 --json benchmarks/results/noise_reference_ladder_dev.json
    python benchmarks/noise_reference.py ladder --captures 2 3 4 --json benchmarks/results/noise_reference_ladder_heldout.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _common import FMD_CROP, eval_dir, read_unit

from napari_mpid.core.auto import CORRELATED
from napari_mpid.core.noise import estimate_noise

LEVELS = {"raw": 1, "avg2": 2, "avg4": 4, "avg8": 8}


def references(raw: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """(naive, matched) noise variance of a raw capture against gt."""
    naive = float(np.mean((raw - gt) ** 2))
    design = np.stack([gt.ravel(), np.ones(gt.size)], axis=1)
    coef, *_ = np.linalg.lstsq(design, raw.ravel(), rcond=None)
    return naive, float(np.mean((raw.ravel() - design @ coef) ** 2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set", choices=("fmdd", "ladder"))
    parser.add_argument("--captures", nargs="+", default=["1"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    root = eval_dir("fmd_test_mix")
    configs = sorted({p.name.rsplit("_", 1)[0] for p in (root / "raw").glob("*.png")})
    crop = (slice(None), slice(None)) if args.set == "fmdd" else FMD_CROP
    levels = {"raw": 1} if args.set == "fmdd" else LEVELS
    rows = []
    for level, k in levels.items():
        for capture in args.captures:
            for config in configs:
                name = f"{config}_{capture}.png"
                gt = read_unit(root / "gt" / name)[crop]
                naive, matched = references(read_unit(root / "raw" / name)[crop], gt)
                plane = read_unit(root / level / name)[crop]
                direct = references(plane, gt)[1] / (1 - k / 50)
                noise = estimate_noise(plane)
                estimate = float(np.mean(noise.variance(plane)))
                rows.append(
                    {
                        "image": f"{level}/{name}",
                        "correlated": bool(noise.correlation >= CORRELATED),
                        "estimate / naive": estimate / (naive / k),
                        "estimate / matched": estimate / (matched / k),
                        "estimate / direct": estimate / direct,
                        "residual": direct * (1 - k / 50),
                    }
                )
    summary = {}
    for level in levels:
        here = [r for r in rows if r["image"].startswith(level + "/")]
        summary[level] = {}
        for key in ("estimate / naive", "estimate / matched", "estimate / direct"):
            values = np.array([r[key] for r in here])
            outside = int(np.sum(np.abs(values - 1) > 0.15))
            summary[level][key] = {"min": float(values.min()), "max": float(values.max()), "outside 15 %": outside}
            print(
                f"{level:5s} {key:19s} {values.min():.2f}-{values.max():.2f}, outside 15 %: {outside} of {len(values)}"
            )
    if args.set == "ladder":
        # Whether gt holds the averaged captures: the residual's raw : avg8 ratio is then
        # (1 - 1/50) / (1/8 - 1/50) = 9.3, else (1 + 1/50) / (1/8 + 1/50) = 7.0.
        residual = {r["image"]: r["residual"] for r in rows}
        ratios = {
            name: residual[f"raw/{name}"] / residual[f"avg8/{name}"]
            for name in (i.split("/", 1)[1] for i in residual if i.startswith("raw/"))
        }
        summary["residual raw : avg8"] = ratios
        print("residual raw : avg8 (9.3 if gt holds the averaged captures, 7.0 if not):")
        print("  " + ", ".join(f"{n[:-4]} {v:.1f}" for n, v in ratios.items()))
    if args.json:
        args.json.write_text(
            json.dumps({"set": args.set, "captures": args.captures, "summary": summary, "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
