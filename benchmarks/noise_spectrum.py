"""The wide-field noise's autocorrelation within 2 pixels: against gt, and read from one 128x128 crop.

Not a test: a measurement for docs/benchmarks.md ("What a right noise
model would be worth on the ladder"). With the autocorrelation measured
against gt in the blurs' slopes, the ladder's mix beats its oracle blur
by 0.3 dB or more at most levels (``mix_nonlinear.py --gt-acf``); this
asks whether one crop can tell that autocorrelation. Per wide-field crop
of the ladder (FMD's centre 128x128 crop, raw/avg2/avg4/avg8), the lag-1
and lag-2 correlations along x and y and the diagonal ones at (1, 1) and
(2, 2):

gt
    the residual of the whole 512x512 capture after gt's gain and offset
    (benchmarks/_common.py ``gt_residual``), by FFT;
blocks
    the flattest 8x8 blocks that :func:`~napari_mpid.core.noise.estimate_noise`
    chooses (the quietest quarter of each intensity bin), detrended by
    their quadratic surface as there, their mean residual covariance fitted
    by least squares with a stationary autocorrelation reaching
    ``--reach`` pixels passed through the same detrending (so the
    detrending's own bias is modelled, the selection's is not);
windows
    the mean periodogram of the flattest quarter of the crop's 32x32
    windows (step 16; each less its quadratic surface, Hann-tapered, over
    the noise line's variance at its pixels; "flattest": the least
    residual variance over that line), inverted to an autocorrelation:
    blocks four times wider than the estimate's, to see periods up to 32
    pixels;
spectrum
    the crop's Welch periodogram (32x32 Hann windows at a step of 8)
    fitted by the cosine series of an autocorrelation within 2 pixels at
    frequencies where either component is at least ``--cut`` (default
    pi / 2), where the signal of an optically blurred image is weakest.

``--psd`` prints, per channel of capture 1 at the raw level, the gt
residual's Welch periodogram (32x32 windows at a step of 16 over the whole
capture, relative to the residual's variance: 1 is white) along the x and
y axes and the diagonal of the frequency plane, at k / 32 cycles per pixel.

Development = capture 1; the others are held out (``--captures``).

    python benchmarks/noise_spectrum.py --captures 1 2 3 4 --json benchmarks/results/noise_spectrum.json
    python benchmarks/noise_spectrum.py --psd
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import numpy as np
from _common import FMD_CROP, eval_dir, gt_residual, read_unit, residual_autocorrelation

from napari_mpid.core import noise

LEVELS = ("raw", "avg2", "avg4", "avg8")
#: Welch windows' side and step for the spectrum reading.
WINDOW, STEP = 32, 8
#: Lags (dy, dx) of an autocorrelation within 2 pixels, one of each symmetric pair.
NEAR = [(dy, dx) for dy in range(3) for dx in range(-2, 3) if dy > 0 or dx >= 0]
#: What is reported per reading: name -> lag (dy, dx).
SHOWN = {"x1": (0, 1), "y1": (1, 0), "x2": (0, 2), "y2": (2, 0), "d11": (1, 1), "d22": (2, 2)}


@functools.cache
def _detrended_lags(reach: int) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Lags within ``reach`` (one of each pair) and, per lag, its covariance pattern after the blocks' detrending."""
    size = noise.BLOCK
    q, _ = np.linalg.qr(noise._quadratic_terms(size))
    keep = np.eye(size * size) - q @ q.T
    row, col = np.divmod(np.arange(size * size), size)
    lags = [(dy, dx) for dy in range(reach + 1) for dx in range(-reach, reach + 1) if dy > 0 or dx >= 0]
    patterns = []
    for dy, dx in lags:
        pair = ((row[:, None] - row[None, :] == dy) & (col[:, None] - col[None, :] == dx)).astype(np.float64)
        if (dy, dx) != (0, 0):
            pair = pair + pair.T
        patterns.append((keep @ pair @ keep).ravel())
    return lags, np.stack(patterns, axis=1)


def from_blocks(plane: np.ndarray, reach: int) -> dict[tuple[int, int], float]:
    """The autocorrelation read off the flattest detrended blocks (see the module's docstring)."""
    means, residual = noise._detrend(noise._blocks(plane))
    chosen = noise._flattest(means, (residual**2).sum(axis=(1, 2)))
    flat = residual[chosen].reshape(-1, noise.BLOCK * noise.BLOCK)
    lags, patterns = _detrended_lags(reach)
    fitted, *_ = np.linalg.lstsq(patterns, (flat.T @ flat / len(flat)).ravel(), rcond=None)
    return {lag: float(v / fitted[0]) for lag, v in zip(lags, fitted)}


def periodogram(plane: np.ndarray, step: int = STEP) -> np.ndarray:
    """Welch's periodogram of ``plane``: :data:`WINDOW`-square Hann windows at ``step``, each less its mean."""
    taper = np.outer(np.hanning(WINDOW), np.hanning(WINDOW))
    taper /= np.sqrt(np.mean(taper**2))
    power = np.zeros((WINDOW, WINDOW))
    count = 0
    for i in range(0, plane.shape[0] - WINDOW + 1, step):
        for j in range(0, plane.shape[1] - WINDOW + 1, step):
            window = plane[i : i + WINDOW, j : j + WINDOW]
            power += np.abs(np.fft.fft2((window - window.mean()) * taper)) ** 2
            count += 1
    return power / (count * WINDOW * WINDOW)


def from_windows(plane: np.ndarray) -> dict[tuple[int, int], float]:
    """The autocorrelation from the flattest quarter of the plane's 32x32 windows (see the module's docstring)."""
    line = noise.estimate_noise(plane)
    q, _ = np.linalg.qr(noise._quadratic_terms(WINDOW))
    taper = np.outer(np.hanning(WINDOW), np.hanning(WINDOW))
    taper /= np.sqrt(np.mean(taper**2))
    found = []
    for i in range(0, plane.shape[0] - WINDOW + 1, WINDOW // 2):
        for j in range(0, plane.shape[1] - WINDOW + 1, WINDOW // 2):
            window = plane[i : i + WINDOW, j : j + WINDOW].ravel()
            expected = float(np.mean(line.variance(window)))
            residual = (window - q @ (q.T @ window)).reshape(WINDOW, WINDOW)
            power = np.abs(np.fft.fft2(residual * taper)) ** 2 / (WINDOW * WINDOW) / expected
            found.append((float(residual.var()) / expected, power))
    found.sort(key=lambda f: f[0])
    power = np.mean([p for _, p in found[: max(1, len(found) // 4)]], axis=0)
    acf = np.real(np.fft.ifft2(power))
    return {lag: float(acf[lag] / acf[0, 0]) for lag in NEAR}


def from_spectrum(plane: np.ndarray, cut: float) -> dict[tuple[int, int], float]:
    """The autocorrelation within 2 pixels fitted to the crop's high-frequency periodogram."""
    power = periodogram(plane)
    w = np.fft.fftfreq(WINDOW) * 2 * np.pi
    wy, wx = np.meshgrid(w, w, indexing="ij")
    high = np.maximum(np.abs(wy), np.abs(wx)) >= cut
    design = np.stack([np.cos(wy * dy + wx * dx)[high] * (1 if (dy, dx) == (0, 0) else 2) for dy, dx in NEAR], axis=1)
    fitted, *_ = np.linalg.lstsq(design, power[high], rcond=None)
    return {lag: float(v / fitted[0]) for lag, v in zip(NEAR, fitted)}


def shown(reading: dict[tuple[int, int], float]) -> dict[str, float]:
    return {name: round(reading.get(lag, reading.get((-lag[0], -lag[1]), np.nan)), 3) for name, lag in SHOWN.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", nargs="+", default=["1"])
    parser.add_argument("--reach", type=int, default=4, help="the blocks' fitted autocorrelation reaches this far")
    parser.add_argument("--cut", type=float, default=np.pi / 2, help="the spectrum's fit above this frequency")
    parser.add_argument("--psd", action="store_true", help="print the gt residual's spectrum per channel and stop")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    root = eval_dir("fmd_test_mix")
    if args.psd:
        half = WINDOW // 2 + 1
        for channel in ("B", "G", "R"):
            name = f"WideField_BPAE_{channel}_1.png"
            residual = gt_residual(read_unit(root / "raw" / name), read_unit(root / "gt" / name))[0]
            power = periodogram(residual, step=WINDOW // 2) / residual.var()
            for label, values in (("x", power[0, :half]), ("y", power[:half, 0]), ("diagonal", np.diag(power)[:half])):
                print(f"{channel} {label:8s} " + " ".join(f"{v:5.2f}" for v in values))
        return 0
    rows = []
    for level in LEVELS:
        for capture in args.captures:
            for channel in ("B", "G", "R"):
                name = f"WideField_BPAE_{channel}_{capture}.png"
                full = read_unit(root / level / name)
                acf = residual_autocorrelation(gt_residual(full, read_unit(root / "gt" / name))[0], 2)
                truth = {lag: float(acf[2 + lag[0], 2 + lag[1]]) for lag in NEAR}
                crop = full[FMD_CROP]
                row = {
                    "image": f"{level}/{name}",
                    "gt": shown(truth),
                    "blocks": shown(from_blocks(crop, args.reach)),
                    "windows": shown(from_windows(crop)),
                    "spectrum": shown(from_spectrum(crop, args.cut)),
                }
                rows.append(row)
                print(
                    f"{row['image']:32s} "
                    + " | ".join(
                        f"{k} " + " ".join(f"{n} {v:+.2f}" for n, v in row[k].items())
                        for k in ("gt", "blocks", "windows", "spectrum")
                    ),
                    flush=True,
                )
    if args.json:
        record = {
            "what": "wide-field noise autocorrelation within 2 px: gt vs one 128x128 crop",
            "command": "python benchmarks/noise_spectrum.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "reach": args.reach,
            "cut": args.cut,
            "rows": rows,
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
