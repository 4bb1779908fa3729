"""The noise level of spatially correlated noise: the two-correlation calibration against the former one.

Not a test: a measurement to run by hand. :func:`~napari_mpid.core.noise.estimate_noise`
divides the flat blocks' variance by the share of it that detrending and
selection left, read off a simulated calibration. It was indexed by the
blocks' lag-1 correlation alone, simulated on [s, 1, s]-blurred noise; it is
now indexed by their lag-1 and lag-2 correlations, simulated on
[t, s, 1, s, t]-blurred noise with a block-to-block spread of the level
(``noise.LEVEL_SPREAD``). The former rule (its table, and its
``SPECTRAL_FLOOR`` of 0.2) is replayed here.

For every FMD image: the estimated variance under each rule against the
variance measured with gt (gain and offset of gt fitted to the image), the
PSNR of the auto preset's mix alone (``auto.combine`` without candidates,
4 % held out, no network) with each, and the patch share that decides
between white and correlated noise (patch variance / blocks' level). gt is
the mean of 50 captures that include the image's own: for a mean of k of
them, ``var(image - gt) = v (1/k - 1/50)``, so the measured variance is that
of the residual times 50 / (50 - k) (the raw-to-avg16 residual ratio of the
wide-field captures is 22.5, 23.1 with the captures included in gt, 12.4
without). Sets: development = capture 1 (the 12 full raw images and the
ladder's 128x128 crops of raw, avg2, avg4, avg8), which chose the
constants; held out = captures 2-4 (full raw images); and the avg16 crops of
captures 1-4, the most textured white-noise planes, as a check of the
white/correlated decision.

Also the measurement behind ``LEVEL_SPREAD``: the share of the mean block
variance kept by the quietest quarter of the blocks for FMD wide-field
noise (residual against gt, divided by its noise-level line) and for
stationary Gaussian noise of the same spectrum (its Fourier phases
randomised), and the log-normal spread of the block level that turns the
second into the first.

Example::

    nice -n 5 env OMP_NUM_THREADS=1 python benchmarks/noise_correlated.py \\
        --json benchmarks/results/noise_correlated.json
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from _common import FMD_CROP, eval_dir, gt_residual, mix_alone_psnr, read_unit

from napari_mpid.core import noise
from napari_mpid.core.noise import estimate_noise

LEVELS = {"raw": 1, "avg2": 2, "avg4": 4, "avg8": 8, "avg16": 16}
#: The former decision between white and correlated noise.
OLD_SPECTRAL_FLOOR = 0.2


@functools.cache
def old_calibration_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The former table: (measured residual lag-1, true lag-1, variance bias) for [s, 1, s] noise."""
    rng = np.random.default_rng(0)
    measured, true, bias = [], [], []
    for strength in np.linspace(0.0, 0.6, 13):
        field = noise.correlated_noise((40, noise.BLOCK * 10, noise.BLOCK * 10), float(strength), rng)
        blocks = field.reshape(40, 10, noise.BLOCK, 10, noise.BLOCK).transpose(0, 1, 3, 2, 4)
        _, residual = noise._detrend(blocks.reshape(-1, noise.BLOCK, noise.BLOCK))
        variances = (residual**2).sum(axis=(1, 2)) / (noise.BLOCK * noise.BLOCK - noise._TERMS)
        keep = np.argsort(variances)[: int(len(variances) * noise.FLAT_FRACTION)]
        measured.append(noise._lags(residual[keep])[0])
        true.append(float(np.mean([np.mean(field[..., 1:] * field[..., :-1]), np.mean(field[:, 1:] * field[:, :-1])])))
        bias.append(float(variances[keep].mean()))
    return np.array(measured), np.array(true), np.array(bias)


@contextlib.contextmanager
def former_rule() -> Iterator[None]:
    """Within the block, :func:`estimate_noise` uses the former one-correlation table and floor."""
    measured, true, bias = old_calibration_table()

    def lookup(lag1: float, lag2: float) -> tuple[float, float]:
        return float(np.interp(lag1, measured, true)), float(np.interp(lag1, measured, bias))

    saved = noise._calibration, noise.SPECTRAL_FLOOR
    noise._calibration, noise.SPECTRAL_FLOOR = lookup, OLD_SPECTRAL_FLOOR
    try:
        yield
    finally:
        noise._calibration, noise.SPECTRAL_FLOOR = saved


def patch_share(plane: np.ndarray) -> float:
    """Patch variance over the blocks' level: above ``SPECTRAL_FLOOR`` the noise is taken as white."""
    return noise.patch_noise_variance(plane) / max(noise.block_estimate(plane).sigma ** 2, 1e-30)


def measure(root: Path, level: str, name: str, crop: bool) -> dict[str, object]:
    """One image: measured variance, both rules' estimates, their mixes' PSNR and patch shares."""
    plane, clean = read_unit(root / level / name), read_unit(root / "gt" / name)
    if crop:
        plane, clean = plane[FMD_CROP], clean[FMD_CROP]
    k = LEVELS[level]
    measured = float(np.mean(gt_residual(plane, clean)[0] ** 2)) * 50 / (50 - k)
    with former_rule():
        old = estimate_noise(plane)
        old_share = patch_share(plane)
    new = estimate_noise(plane)
    return {
        "image": f"{level}/{name}" + (" crop" if crop else ""),
        "measured variance": measured,
        "old ratio": old.sigma**2 / measured,
        "new ratio": new.sigma**2 / measured,
        # The same under the convention that gt's 50 captures exclude this image.
        "new ratio, gt independent": new.sigma**2 / (measured * (50 - k) / (50 + k)),
        "old correlation": old.correlation,
        "new correlation": new.correlation,
        "old patch share": old_share,
        "new patch share": patch_share(plane),
        "old psnr": mix_alone_psnr(plane, clean, old),
        "new psnr": mix_alone_psnr(plane, clean, new),
    }


def summarise(rows: list[dict[str, object]]) -> dict[str, object]:
    """Means and ranges of a set, over all its images and over its wide-field ones."""
    out: dict[str, object] = {}
    for label, chosen in (("all", rows), ("wide-field", [r for r in rows if "WideField" in str(r["image"])])):
        if not chosen:
            continue
        gain = np.array([r["new psnr"] - r["old psnr"] for r in chosen])
        out[label] = {
            "images": len(chosen),
            "old psnr": float(np.mean([r["old psnr"] for r in chosen])),
            "new psnr": float(np.mean([r["new psnr"] for r in chosen])),
            "gain": float(gain.mean()),
            "gain range": [float(gain.min()), float(gain.max())],
            "old ratio mean": float(np.mean([r["old ratio"] for r in chosen])),
            "new ratio mean": float(np.mean([r["new ratio"] for r in chosen])),
            "old ratio range": [min(r["old ratio"] for r in chosen), max(r["old ratio"] for r in chosen)],
            "new ratio range": [min(r["new ratio"] for r in chosen), max(r["new ratio"] for r in chosen)],
            "new ratio range, gt independent": [
                min(r["new ratio, gt independent"] for r in chosen),
                max(r["new ratio, gt independent"] for r in chosen),
            ],
            "estimates changed": sum(abs(r["new ratio"] / r["old ratio"] - 1) > 1e-9 for r in chosen),
            "decisions changed": sum((r["old correlation"] == 0) != (r["new correlation"] == 0) for r in chosen),
        }
    return out


def block_variances(field: np.ndarray) -> np.ndarray:
    """Residual variances of a field's 8x8 blocks after the quadratic detrend (times 58)."""
    _, res = noise._detrend(noise._blocks(field))
    return (res**2).sum(axis=(1, 2))


def quiet_share(variances: np.ndarray) -> float:
    """Mean of the quietest quarter of block variances over the mean of all."""
    return float(np.sort(variances)[: len(variances) // 4].mean() / variances.mean())


def level_spread(root: Path) -> dict[str, object]:
    """The block-to-block spread of FMD wide-field noise's level beyond stationary noise of its spectrum."""
    out: dict[str, object] = {}
    for channel in "BGR":
        name = f"WideField_BPAE_{channel}_1.png"
        noisy, clean = read_unit(root / "raw" / name), read_unit(root / "gt" / name)
        res, fitted = gt_residual(noisy, clean)
        # Divide by the noise-level line (variance against intensity) to leave its shape only.
        line = np.polyfit(fitted.ravel(), (res**2).ravel(), 1)
        field = res / np.sqrt(np.maximum(np.polyval(line, fitted), 1e-12))
        phases = np.exp(2j * np.pi * np.random.default_rng(1).random(field.shape))
        stationary = np.real(np.fft.ifft2(np.abs(np.fft.fft2(field)) * phases))
        variances = block_variances(stationary)
        real, gauss = quiet_share(block_variances(field)), quiet_share(variances)
        # The log-normal spread of the block level that takes the stationary share down to the real one.
        z = np.random.default_rng(2).standard_normal((16, len(variances)))
        spreads = np.linspace(0.0, 0.4, 81)
        kept = np.array([np.mean([quiet_share(variances * np.exp(s * zi - s * s / 2)) for zi in z]) for s in spreads])
        spread = float(np.interp(real, kept[::-1], spreads[::-1]))
        out[channel] = {"noise": real, "same spectrum, stationary": gauss, "spread": spread}
        print(f"wide-field {channel}: quietest quarter keeps {real:.3f} (stationary {gauss:.3f}): spread {spread:.2f}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    root = eval_dir("fmd_test_mix")
    configs = sorted({p.name.rsplit("_", 1)[0] for p in (root / "raw").glob("*.png")})
    start = time.perf_counter()
    noise._calibration_table.cache_clear()
    noise._calibration_fit()
    report: dict[str, object] = {"calibration seconds": time.perf_counter() - start}
    print(f"calibration table and fit: {report['calibration seconds']:.2f} s")
    report["level spread"] = level_spread(root)
    sets = {
        "development: full raw, capture 1": [("raw", f"{c}_1.png", False) for c in configs],
        **{
            f"development: crops {lv}, capture 1": [(lv, f"{c}_1.png", True) for c in configs]
            for lv in list(LEVELS)[:4]
        },
        "held out: full raw, captures 2-4": [("raw", f"{c}_{k}.png", False) for k in "234" for c in configs],
        "check: crops avg16, captures 1-4": [("avg16", f"{c}_{k}.png", True) for k in "1234" for c in configs],
    }
    for key, images in sets.items():
        rows = []
        for level, name, crop in images:
            row = measure(root, level, name, crop)
            rows.append(row)
            print(
                f"{row['image']:38s} variance/measured old {row['old ratio']:.2f} new {row['new ratio']:.2f}  "
                f"lag-1 {row['old correlation']:.2f} -> {row['new correlation']:.2f}  share "
                f"{row['old patch share']:.3f} -> {row['new patch share']:.3f}  mix PSNR "
                f"{row['old psnr']:.2f} -> {row['new psnr']:.2f}",
                flush=True,
            )
        summary = summarise(rows)
        report[key] = {"summary": summary, "rows": rows}
        for label, s in summary.items():
            print(
                f"== {key}, {label} ({s['images']}): variance/measured old {s['old ratio mean']:.3f} "
                f"({s['old ratio range'][0]:.2f}-{s['old ratio range'][1]:.2f}), new {s['new ratio mean']:.3f} "
                f"({s['new ratio range'][0]:.2f}-{s['new ratio range'][1]:.2f}); mix PSNR {s['old psnr']:.3f} -> "
                f"{s['new psnr']:.3f} ({s['gain']:+.3f}, {s['gain range'][0]:+.2f}..{s['gain range'][1]:+.2f}); "
                f"estimates changed {s['estimates changed']}, decisions changed {s['decisions changed']}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
