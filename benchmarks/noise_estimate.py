"""How far the single-plane noise estimate is from the truth on the FMD noise ladder and the Z-stacks.

FMD: the 12 first captures at each level, centre 128x128 crops at (192, 192),
/255. The reference noise of a level is the raw capture's RMS difference to
gt divided by sqrt(k) for a mean of k captures (gt is the mean of 50
captures that include these, so comparing the averaged image with gt
directly would understate its noise). Z-stacks: RMS of noisy - clean on
planes 5, 20 and 30. Reported: estimated / reference noise level.

Also the numbers behind ``SPECTRAL_FLOOR`` in core/noise.py: the share of the
blocks' noise level that the patch spectrum keeps, for simulated noise of
rising lag-1 correlation and for the FMD captures by modality, and the time
of one estimate on a 512x512 plane.

And how clean the Z-stacks' "clean" references are: the white component of
each clean plane (:func:`patch_noise_variance` of the clean plane) as a
share of the synthetic noise variance added to it (DATA.md's recipe), how
the fine detail of the clean planes (plane minus its sigma-1 blur) grows
with intensity, and how much of it neighbouring planes share. Whatever
white content a reference holds (shot noise of the original acquisition
or texture at the pixel scale), a noise estimate made on the noisy planes
counts it as noise, and a denoiser removes what the reference keeps.

The spread of the noise-level line over a plane's pixels (variance at the
90th over the 10th percentile) behind ``auto.SIGNAL_DEPENDENT``: FMD's
confocal and two-photon crops, the Z-stacks' planes, and CSet9's crops
with constant Gaussian noise (sigma 25, as benchmarks/eval_quality.py).

And the drift series of benchmarks/stacks.py: frames shifted by half a
pixel have interpolated, hence correlated, noise (lag-1 along the shift of
the residual against the equally shifted gt), which the estimate misses.

    python benchmarks/noise_estimate.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tifffile
from _common import FMD_CROP, eval_dir, fmd_first_captures, read_gray, read_unit

from napari_mpid.core import noise as noise_module
from napari_mpid.core.noise import correlated_noise, estimate_noise, patch_noise_variance

LEVELS = {"raw": 1, "avg2": 2, "avg4": 4, "avg8": 8, "avg16": 16}
CROP = FMD_CROP


def _centre_crop(path: Path) -> np.ndarray:
    """The 128x128 centre crop of an FMD capture, in [0, 1]."""
    return read_unit(path)[CROP]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json")
    args = parser.parse_args()
    root = eval_dir("fmd_test_mix")
    names = fmd_first_captures()
    out: dict[str, dict[str, float]] = {}
    for level, k in LEVELS.items():
        ratios = []
        for name in names:
            gt = _centre_crop(root / "gt" / name)
            reference = np.sqrt(np.mean((_centre_crop(root / "raw" / name) - gt) ** 2)) / np.sqrt(k)
            plane = _centre_crop(root / level / name)
            ratios.append(np.sqrt(np.mean(estimate_noise(plane).variance(plane))) / reference)
        out[level] = {"median": float(np.median(ratios)), "min": float(np.min(ratios)), "max": float(np.max(ratios))}
        print(
            f"FMD {level:5s} estimate / reference: median {np.median(ratios):.2f}, {min(ratios):.2f}-{max(ratios):.2f}"
        )
    for stack in ("neuron", "pollen"):
        noisy = tifffile.imread(eval_dir("zstacks", f"{stack}_noisy.tif")).astype(np.float64)
        clean = tifffile.imread(eval_dir("zstacks", f"{stack}_clean.tif")).astype(np.float64)
        ratios = [estimate_noise(noisy[z]).sigma / np.sqrt(np.mean((noisy[z] - clean[z]) ** 2)) for z in (5, 20, 30)]
        out[stack] = {"min": float(min(ratios)), "max": float(max(ratios))}
        print(f"{stack} estimate / truth, planes 5, 20, 30: {', '.join(f'{r:.2f}' for r in ratios)}")
    out["patch share"] = patch_shares(root, names)
    out["clean references"] = {stack: reference_noise(stack) for stack in ("neuron", "pollen")}
    out["drift frames"] = drift_frames()
    out["noise-level spread"] = line_spreads(root, names)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


def patch_shares(root: Path, names: list[str]) -> dict[str, object]:
    """Patch variance / block level: simulated correlated noise, FMD by modality, and the time per estimate."""
    rng = np.random.default_rng(0)
    simulated = {}
    for strength in (0.0, 0.1, 0.2, 0.3, 0.4, 0.6):
        field = correlated_noise((256, 256), strength, rng)
        lag1 = float(np.mean(field[:, 1:] * field[:, :-1]))
        simulated[f"lag-1 {lag1:.2f}"] = patch_noise_variance(field) / float(np.mean(field**2))
        print(f"simulated noise, lag-1 {lag1:.2f}: patch share {simulated[f'lag-1 {lag1:.2f}']:.3f}")
    saved, noise_module.SPECTRAL_FLOOR = noise_module.SPECTRAL_FLOOR, np.inf  # the blocks' own level
    try:
        fmd: dict[str, list[float]] = {}
        lag1: dict[str, list[float]] = {}
        for level in ("raw", "avg2", "avg4", "avg8"):
            for name in names:
                plane = _centre_crop(root / level / name)
                blocks = estimate_noise(plane)
                share = patch_noise_variance(plane) / float(np.mean(blocks.variance(plane)))
                fmd.setdefault(name.split("_")[0], []).append(share)
                if name.startswith("Confocal"):
                    lag1.setdefault(level, []).append(blocks.correlation)
    finally:
        noise_module.SPECTRAL_FLOOR = saved
    for modality, shares in fmd.items():
        print(f"FMD {modality} raw-avg8: patch share {min(shares):.2f}-{max(shares):.2f}")
    for level, values in lag1.items():
        print(f"FMD confocal {level}: the blocks' lag-1 'correlation' {min(values):.2f}-{max(values):.2f}")
    plane = read_gray(root / "raw" / names[0]) / 255.0  # the full 512x512 capture
    start = time.perf_counter()
    for _ in range(5):
        estimate_noise(plane)
    milliseconds = (time.perf_counter() - start) / 5 * 1000
    print(f"estimate_noise on a {plane.shape[0]}x{plane.shape[1]} plane: {milliseconds:.0f} ms")
    return {
        "simulated": simulated,
        "fmd": {k: [min(v), max(v)] for k, v in fmd.items()},
        "confocal block lag-1 by level": {k: [min(v), max(v)] for k, v in lag1.items()},
        "ms per 512x512 plane": milliseconds,
    }


def reference_noise(stack: str) -> dict[str, float]:
    """White, intensity-proportional, plane-independent content of a Z-stack's clean reference."""
    from scipy.ndimage import gaussian_filter, uniform_filter

    clean = tifffile.imread(eval_dir("zstacks", f"{stack}_clean.tif")).astype(np.float64)
    shares = [patch_noise_variance(c) / float(np.mean(c / 20 + 0.02**2)) for c in clean]
    detail = clean - gaussian_filter(clean, (0, 1.0, 1.0))
    across = [float(np.corrcoef(detail[z].ravel(), detail[z + 1].ravel())[0, 1]) for z in range(len(clean) - 1)]
    # Local variance of the detail against local intensity (7x7 windows, all planes): the slope of a
    # line through the origin; shot noise of a clean image scaled by s gives s * var(gain) per unit.
    mean = uniform_filter(clean, (1, 7, 7))
    power = uniform_filter(detail**2, (1, 7, 7))
    slope = float((mean * power).sum() / (mean * mean).sum())
    found = {
        "white share of the synthetic noise (median over planes)": float(np.median(shares)),
        "white share, min": float(np.min(shares)),
        "white share, max": float(np.max(shares)),
        "detail correlation between neighbouring planes (median)": float(np.median(across)),
        "detail variance per unit intensity": slope,
    }
    print(f"{stack} clean reference: " + ", ".join(f"{k} {v:.3g}" for k, v in found.items()))
    return found


def line_spreads(root: Path, names: list[str]) -> dict[str, list[float]]:
    """Range (min, max) of the 90th/10th percentile ratio of the noise-level line per group of planes."""
    from eval_quality import load_cset9

    from napari_mpid.core.noise import estimate_noise_channels

    def spread(plane: np.ndarray) -> float:
        variance = estimate_noise_channels(plane).variance(plane.ravel())
        return float(np.percentile(variance, 90) / max(float(np.percentile(variance, 10)), 1e-12))

    groups: dict[str, list[float]] = {"FMD confocal and two-photon, raw-avg8": [], "neuron": [], "pollen": []}
    for level in ("raw", "avg2", "avg4", "avg8"):
        for name in names:
            if not name.startswith("WideField"):  # correlated noise: no intensity-dependent weights
                groups["FMD confocal and two-photon, raw-avg8"].append(spread(_centre_crop(root / level / name)))
    for stack in ("neuron", "pollen"):
        noisy = tifffile.imread(eval_dir("zstacks", f"{stack}_noisy.tif")).astype(np.float64)
        groups[stack] = [spread(plane) for plane in noisy]
    groups["CSet9, Gaussian sigma 25"] = [
        spread(noisy.transpose(2, 0, 1).astype(np.float64)) for _, noisy, _ in load_cset9(128, 25.0)
    ]
    out = {k: [min(v), max(v)] for k, v in groups.items()}
    print("noise-level line, variance at the 90th / 10th percentile of the pixels:", out)
    return out


def drift_frames() -> dict[str, list[float]]:
    """Per frame k of the drift series: residual lag-1 along y against gt, and the estimated correlation."""
    from stacks import load

    lag, found = [[] for _ in range(4)], [[] for _ in range(4)]
    for item in load("drift"):
        if item["name"].startswith("WideField"):  # correlated camera noise anyway
            continue
        for k in range(4):
            frame, clean = item["noisy"][k].astype(np.float64) / 255.0, item["clean"][k]
            residual = frame - clean * float((frame * clean).sum() / (clean * clean).sum())
            lag[k].append(float(np.corrcoef(residual[1:].ravel(), residual[:-1].ravel())[0, 1]))
            found[k].append(estimate_noise(frame).correlation)
    out = {f"frame {k}": [float(np.median(lag[k])), float(np.median(found[k]))] for k in range(4)}
    print("drift, confocal and two-photon, per frame: [residual lag-1 along y, estimated lag-1] medians:", out)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
