"""The noise variance on the ladder's crops and FMDD's full images: the patch floor's bound against the tail alone.

Not a test: a measurement to run by hand and record in docs/benchmarks.md
("Noise estimate"). Where :func:`~napari_mpid.core.noise.estimate_noise`
finds pixel-independent noise it took the variance from the tail of the
patches' covariance spectrum alone ("before"); it now takes it no higher
than ``noise.TAIL_ALLOWANCE`` times the spectrum's floor ("after"). For every
item: the variance measured against gt (gain and offset of gt fitted to the
image; gt is the mean of 50 captures that include the image's, so for a mean
of k captures the residual's variance is the noise's times (50 - k) / 50:
``_common.gt_residual``), both estimates and their ratios to it, the noise
branch (white or correlated), the PSNR of the auto preset's mix alone (no
network, ``_common.mix_alone_psnr``) with each, and the tail-over-floor
ratio of the residual itself (pure noise, no texture: where
``TAIL_ALLOWANCE`` must not bind).

Items: the ladder's 128x128 centre crops at raw, avg2, avg4 and avg8 of
captures 1-4, and the 48 full 512x512 raw images (FMDD). Development subset:
capture 1 (the ladder itself and FMDD's 12 first images), which chose
``TAIL_ALLOWANCE`` (``--allowances`` replays others); held out: captures 2-4.
Some of FMD's averaged files are byte-identical across captures (avg4
Confocal_BPAE_R_1, _2 and _4, for one): a held-out crop identical to one
already listed at its level is marked as a duplicate and left out of the
summaries.

Example::

    nice -n 10 env OMP_NUM_THREADS=1 python -u benchmarks/noise_ladder.py --allowances 1.05 1.1 1.15 \\
        --json benchmarks/results/noise_ladder.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
from _common import FMD_CROP, eval_dir, gt_residual, mix_alone_psnr, read_unit

from napari_mpid.core import noise
from napari_mpid.core.noise import estimate_noise

LEVELS = ("raw", "avg2", "avg4", "avg8")


def with_allowance(plane: np.ndarray, allowance: float) -> noise.NoiseEstimate:
    """:func:`estimate_noise` with ``noise.TAIL_ALLOWANCE`` set to ``allowance`` (``inf``: the tail alone)."""
    saved, noise.TAIL_ALLOWANCE = noise.TAIL_ALLOWANCE, allowance
    try:
        return estimate_noise(plane)
    finally:
        noise.TAIL_ALLOWANCE = saved


def tail_over_floor(plane: np.ndarray) -> float:
    """The tail mean of the patch spectrum over its floor corrected for the patch count (what the allowance bounds)."""
    eigenvalues = noise._patch_eigenvalues(plane, noise.PATCH)
    floor = eigenvalues[-noise.FLOOR_EIGENVALUES :].mean() / noise._white_floor(plane.shape, noise.PATCH)
    return float(noise._tail_mean(eigenvalues) / max(floor, 1e-30))


def summarise(rows: list[dict], keys: list[str]) -> dict:
    """Ratio range, count outside 15 % and mean PSNR per estimate, over the rows that are not duplicates."""
    rows = [r for r in rows if not r["duplicate of"]]
    out: dict = {"items": len(rows)}
    for key in keys:
        ratios = np.array([r[f"{key} ratio"] for r in rows])
        out[key] = {
            "ratio min": float(ratios.min()),
            "ratio max": float(ratios.max()),
            "outside 15 %": int(np.sum(np.abs(ratios - 1) > 0.15)),
            "psnr": float(np.mean([r[f"{key} psnr"] for r in rows])),
        }
    delta = np.array([r["after psnr"] - r["before psnr"] for r in rows])
    out["psnr delta"] = {"mean": float(delta.mean()), "min": float(delta.min()), "max": float(delta.max())}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--allowances", type=float, nargs="*", default=[], help="further TAIL_ALLOWANCE values")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    root = eval_dir("fmd_test_mix")
    configs = sorted({p.name.rsplit("_", 1)[0] for p in (root / "raw").glob("*.png")})
    variants = {"before": np.inf, "after": noise.TAIL_ALLOWANCE}
    variants.update({f"allowance {a:g}": a for a in args.allowances})
    sets: dict[str, list[tuple[str, str, bool]]] = {}
    for level in LEVELS:
        for capture in "1234":
            sets[f"crops {level}, capture {capture}"] = [(level, f"{c}_{capture}.png", True) for c in configs]
    for capture in "1234":
        sets[f"full raw, capture {capture}"] = [("raw", f"{c}_{capture}.png", False) for c in configs]
    seen: dict[tuple[str, bool, str], str] = {}
    report: dict = {"tail allowance": noise.TAIL_ALLOWANCE, "sets": {}}
    start = time.perf_counter()
    for key, images in sets.items():
        rows = []
        for level, name, crop in images:
            digest = hashlib.md5((root / level / name).read_bytes()).hexdigest()
            duplicate = seen.setdefault((level, crop, digest), name)
            noisy, clean = read_unit(root / level / name), read_unit(root / "gt" / name)
            if crop:
                noisy, clean = noisy[FMD_CROP], clean[FMD_CROP]
            captures = 1 if level == "raw" else int(level[3:])
            residual = gt_residual(noisy, clean)[0]
            measured = float(np.mean(residual**2)) * 50 / (50 - captures)
            row = {
                "image": f"{level}/{name}",
                "duplicate of": duplicate if duplicate != name else "",
                "measured": measured,
                "residual tail over floor": tail_over_floor(residual),
            }
            for label, allowance in variants.items():
                found = with_allowance(noisy, allowance)
                row[f"{label} variance"] = found.sigma**2
                row[f"{label} ratio"] = found.sigma**2 / measured
                row[f"{label} psnr"] = mix_alone_psnr(noisy, clean, found)
                row["branch"] = "white" if found.correlation == 0.0 else "correlated"
            row["tail over floor"] = tail_over_floor(noisy)
            rows.append(row)
            print(
                f"  {row['image']:34s} {row['branch']:10s} measured {measured:.3e}  ratio before "
                f"{row['before ratio']:.2f} after {row['after ratio']:.2f}  mix {row['before psnr']:.2f} -> "
                f"{row['after psnr']:.2f}" + (f"  (duplicate of {row['duplicate of']})" if row["duplicate of"] else ""),
                flush=True,
            )
        summary = summarise(rows, list(variants))
        report["sets"][key] = {"summary": summary, "rows": rows}
        line = "  ".join(
            f"{label} {summary[label]['ratio min']:.2f}-{summary[label]['ratio max']:.2f} "
            f"({summary[label]['outside 15 %']} out, {summary[label]['psnr']:.3f})"
            for label in variants
        )
        delta = summary["psnr delta"]
        print(
            f"{key:24s} n={summary['items']:2d}  {line}  delta {delta['mean']:+.3f} "
            f"({delta['min']:+.2f}..{delta['max']:+.2f})  [{time.perf_counter() - start:.0f} s]",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
