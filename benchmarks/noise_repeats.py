"""Is the wide-field noise's spectrum each capture's own, and can repeated exposures read it?

Not a test: a measurement for docs/benchmarks.md ("Repeated exposures:
the noise model a calibration could give"). The ladder's noise-model
bound (``mix_nonlinear.py --gt-acf --gt-variance``) measures the noise
against gt. Two questions decide what that bound means for a user:

1. Is what gt's residual calls noise the capture's own? If part of it were
   a difference between gt (the mean of 50 captures) and every capture
   alike, the residuals of two captures would share it: their cross
   spectrum would be positive where the autocorrelation bump lies. Noise
   of independent exposures leaves a cross spectrum near 0 (gt holds 1/50
   of each capture's noise: a cross spectrum of about -1/50).
2. Can a user read the same model without gt, from repeated exposures of
   one field at the same settings? The difference of two gain-matched
   exposures is the noise of both, with the signal gone where the sample
   did not change: :func:`~napari_mpid.core.noise_profile.measure_profile`
   fits its variance per intensity (the noise-level line, as a
   photon-transfer calibration does) and its autocorrelation, here on the
   configuration's other captures at the same level.

For every configuration and level, the gt residual's spectrum in bands of
radial frequency (relative to its mean: white noise reads 1 everywhere),
the cross spectrum of the captures' residuals over the same mean, the
autocorrelation at six short lags against gt and from the other
captures' differences, and the noise variance of capture 1 against gt
(the direct reference of benchmarks/noise_reference.py) beside the
calibrated line's and the single-image estimate's::

    python benchmarks/noise_repeats.py --json benchmarks/results/noise_repeats.json
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from _common import eval_dir, gt_residual, read_unit, residual_autocorrelation

from napari_mpid.core.noise import estimate_noise
from napari_mpid.core.noise_profile import measure_profile

LEVELS = ("raw", "avg2", "avg4", "avg8")
#: Radial frequency bands, cycles per pixel: the wide-field noise's bump lies below 1/16, its cut near 0.4.
BANDS = (0.0, 1 / 32, 1 / 16, 1 / 8, 0.2, 0.3, 0.4, 0.71)
#: Lags (dy, dx) shown: along x and y at 1 and 2 pixels, the diagonals (1, 1) and (2, 2).
SHOWN = {"x1": (0, 1), "y1": (1, 0), "x2": (0, 2), "y2": (2, 0), "d11": (1, 1), "d22": (2, 2)}
#: Residual correlation above which two of FMD's captures share frames (independent pairs: -0.19..-0.01).
SHARED_FRAMES = 0.2


def level_k(level: str) -> int:
    """How many captures the level averages (1 for raw)."""
    return int(level[3:]) if level.startswith("avg") else 1


def band_spectrum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean (cross-)periodogram of ``a`` and ``b`` (Hann window) in each of :data:`BANDS`, and over all frequencies.

    The last entry is the mean over every frequency: for ``a`` = ``b`` the
    windowed variance, the unit the bands are shown in.
    """
    window = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    power = (np.fft.fft2(a * window) * np.conj(np.fft.fft2(b * window))).real / np.sum(window**2)
    fy, fx = np.meshgrid(np.fft.fftfreq(a.shape[0]), np.fft.fftfreq(a.shape[1]), indexing="ij")
    radius = np.hypot(fy, fx)
    bands = [power[(radius >= lo) & (radius < hi)].mean() for lo, hi in itertools.pairwise(BANDS)]
    return np.array([*bands, power.mean()])


def distinct_captures(folder: Path, config: str, captures: list[int]) -> list[tuple[int, np.ndarray]]:
    """The captures of ``config`` in ``folder`` with byte-identical files left out (FMD repeats one wide-field file)."""
    seen, out = set(), []
    for capture in captures:
        path = folder / f"{config}_{capture}.png"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            out.append((capture, read_unit(path)))
    return out


def independent_pairs(frames: list[np.ndarray], gt: np.ndarray) -> list[tuple[int, int]]:
    """Pairs of ``frames`` whose residuals against ``gt`` do not correlate (at most :data:`SHARED_FRAMES`).

    At avg4 and beyond, some of FMD test_mix's captures of a configuration
    are means over overlapping sets of frames: their residuals correlate by
    0.27-0.90 and their difference holds less than their noise. A user's
    repeated exposures share no frames; this is the harness's data
    cleaning, with gt, not part of a calibration.
    """
    residuals = [gt_residual(f, gt)[0].ravel() for f in frames]
    return [
        (i, j)
        for i in range(len(frames))
        for j in range(i + 1, len(frames))
        if np.corrcoef(residuals[i], residuals[j])[0, 1] <= SHARED_FRAMES
    ]


def independent_frames(frames: list[np.ndarray], gt: np.ndarray) -> list[np.ndarray]:
    """The largest subset of ``frames`` whose every pair is in :func:`independent_pairs` (first found)."""
    pairs = set(independent_pairs(frames, gt))
    for size in range(len(frames), 1, -1):
        for subset in itertools.combinations(range(len(frames)), size):
            if all(pair in pairs for pair in itertools.combinations(subset, 2)):
                return [frames[i] for i in subset]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", nargs="+", default=list(LEVELS), choices=LEVELS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    root = eval_dir("fmd_test_mix")
    configs = sorted({p.name.rsplit("_", 1)[0] for p in (root / "raw").glob("*.png")})
    rows = []
    for config in configs:
        gt = read_unit(root / "gt" / f"{config}_1.png")
        for level in args.levels:
            k = level_k(level)
            captures = distinct_captures(root / level, config, [1, 2, 3, 4])
            residuals = [gt_residual(frame, gt)[0] for _, frame in captures]
            autos = np.array([band_spectrum(r, r) for r in residuals])
            crosses = [band_spectrum(a, b) for i, a in enumerate(residuals) for b in residuals[i + 1 :]]
            unit = autos[:, -1].mean()
            first = captures[0][1]
            others = [frame for capture, frame in captures if capture != 1] if captures[0][0] == 1 else []
            gt_acf = residual_autocorrelation(residuals[0], 2)
            row = {
                "config": config,
                "level": level,
                "captures": [c for c, _ in captures],
                "spectrum": [round(float(v), 3) for v in autos.mean(axis=0)[:-1] / unit],
                "cross spectrum": [round(float(v), 3) for v in np.mean(crosses, axis=0)[:-1] / unit],
                "power below 1/8": round(float(_share_below(residuals[0], 1 / 8)), 3),
                "gt acf": {n: round(float(gt_acf[2 + dy, 2 + dx]), 3) for n, (dy, dx) in SHOWN.items()},
                "variance, gt": float(np.mean(residuals[0] ** 2) / (1 - k / 50)),
                "variance, estimate": float(np.mean(estimate_noise(first).variance(first))),
            }
            frames = independent_frames(others, gt) if len(others) >= 2 else []
            row["repeats"] = len(frames)
            if len(frames) >= 2:
                profile = measure_profile(np.stack(frames))
                acf, c = profile.autocorrelation, profile.autocorrelation.shape[0] // 2
                row["repeats acf"] = {n: round(float(acf[c + dy, c + dx]), 3) for n, (dy, dx) in SHOWN.items()}
                row["variance, repeats"] = float(np.mean(profile.variance(first)))
            rows.append(row)
            ratio = "  ".join(
                f"{key.split(', ')[1]} {row[key] / row['variance, gt']:.2f}"
                for key in ("variance, estimate", "variance, repeats")
                if key in row
            )
            print(
                f"{config:18s} {level:4s} spectrum {' '.join(f'{v:5.2f}' for v in row['spectrum'])} | cross "
                f"{' '.join(f'{v:5.2f}' for v in row['cross spectrum'])} | below 1/8 {row['power below 1/8']:.2f}"
                f" | x1/x2/d22 gt {row['gt acf']['x1']:.2f}/{row['gt acf']['x2']:.2f}/{row['gt acf']['d22']:.2f}"
                + (
                    f" repeats {row['repeats acf']['x1']:.2f}/{row['repeats acf']['x2']:.2f}/{row['repeats acf']['d22']:.2f}"
                    if "repeats acf" in row
                    else ""
                )
                + f" | variance / gt: {ratio}",
                flush=True,
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "what": "FMD test_mix: the gt residual's spectrum and cross spectrum, and the noise model from repeats",
            "bands (cycles per pixel)": [round(b, 4) for b in BANDS],
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": platform.processor() or platform.machine(),
            "command": "python benchmarks/noise_repeats.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "rows": rows,
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


def _share_below(residual: np.ndarray, cut: float) -> float:
    """Share of ``residual``'s power (Hann-windowed periodogram) at radial frequencies below ``cut`` cycles per pixel."""
    window = np.outer(np.hanning(residual.shape[0]), np.hanning(residual.shape[1]))
    power = np.abs(np.fft.fft2(residual * window)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(residual.shape[0]), np.fft.fftfreq(residual.shape[1]), indexing="ij")
    return float(power[np.hypot(fy, fx) < cut].sum() / power.sum())


if __name__ == "__main__":
    raise SystemExit(main())
