"""Which noise variance the mix should use on white-noise planes: the patch spectrum alone, or bounded by the blocks.

Not a test: a measurement to run by hand and record in docs/benchmarks.md
("Noise estimate"). Where :func:`~napari_mpid.core.noise.estimate_noise`
finds pixel-independent noise it takes the variance from the patches'
covariance spectrum; until this comparison it took the smaller of that and
the flat blocks' level. For every FMD image this script reports both
against the variance measured with gt (gain and offset fitted to the image;
gt is the mean of 50 captures that include the image's, so for a mean of k
captures the residual's variance is the noise's times (50 - k) / 50, as
benchmarks/noise_correlated.py measures) and the PSNR of
the auto preset's mix alone (no network) with each.

Development subset: capture 1 (the FMDD 12 first captures and the ladder's
crops) chose the rule; captures 2-4 (full images) and capture 2 (crops) are
reported apart as held out.

Example::

    python benchmarks/noise_variance_choice.py --json benchmarks/results/noise_variance_choice.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _common import FMD_CROP, eval_dir, gt_residual, mix_alone_psnr, read_unit

from napari_mpid.core.noise import NoiseEstimate, block_estimate, estimate_noise


def bounded_by_blocks(noisy: np.ndarray, found: NoiseEstimate) -> NoiseEstimate:
    """The former rule: on white noise, the smaller of the patch variance and the blocks' level."""
    if found.correlation != 0.0:
        return found
    level = block_estimate(noisy).sigma ** 2
    if level >= found.sigma**2:
        return found
    s = level / found.sigma**2
    return NoiseEstimate(float(np.sqrt(level)), 0.0, found.gain * s, found.offset * s, found.floor * s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    root = eval_dir("fmd_test_mix")
    configs = sorted({p.name.rsplit("_", 1)[0] for p in (root / "raw").glob("*.png")})
    sets: dict[str, list[tuple[str, str, bool]]] = {}
    for capture in "1234":
        sets[f"full raw, capture {capture}"] = [("raw", f"{c}_{capture}.png", False) for c in configs]
    for level in ("raw", "avg2", "avg4", "avg8"):
        for capture in "12":
            sets[f"crops {level}, capture {capture}"] = [(level, f"{c}_{capture}.png", True) for c in configs]
    report = {}
    for key, images in sets.items():
        rows = []
        for level, name, crop in images:
            noisy, clean = read_unit(root / level / name), read_unit(root / "gt" / name)
            if crop:
                noisy, clean = noisy[FMD_CROP], clean[FMD_CROP]
            captures = 1 if level == "raw" else int(level[3:])
            reference = float(np.mean(gt_residual(noisy, clean)[0] ** 2)) * 50 / (50 - captures)
            row = {"image": f"{level}/{name}"}
            found = estimate_noise(noisy)
            for rule, used in (("patches", found), ("bounded", bounded_by_blocks(noisy, found))):
                row[f"{rule} ratio"] = used.sigma**2 / reference
                row[f"{rule} psnr"] = mix_alone_psnr(noisy, clean, used)
            rows.append(row)
        gain = np.array([r["patches psnr"] - r["bounded psnr"] for r in rows])
        summary = {
            "patches psnr": float(np.mean([r["patches psnr"] for r in rows])),
            "bounded psnr": float(np.mean([r["bounded psnr"] for r in rows])),
            "gain": float(gain.mean()),
            "gain min": float(gain.min()),
            "gain max": float(gain.max()),
            "patches ratio range": [min(r["patches ratio"] for r in rows), max(r["patches ratio"] for r in rows)],
            "bounded ratio range": [min(r["bounded ratio"] for r in rows), max(r["bounded ratio"] for r in rows)],
        }
        report[key] = {"summary": summary, "rows": rows}
        print(
            f"{key:22s} patches {summary['patches psnr']:.3f}  bounded {summary['bounded psnr']:.3f}  "
            f"gain {summary['gain']:+.3f} ({summary['gain min']:+.2f}..{summary['gain max']:+.2f})  variance/measured "
            f"patches {summary['patches ratio range'][0]:.2f}-{summary['patches ratio range'][1]:.2f}, "
            f"bounded {summary['bounded ratio range'][0]:.2f}-{summary['bounded ratio range'][1]:.2f}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
