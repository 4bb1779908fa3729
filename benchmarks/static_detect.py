"""Can the default tell repeated exposures of a still scene from a series that changes?

Not a test: a measurement to run by hand and record in docs/benchmarks.md
("Recognising repeated exposures").

For every series of ``stacks.py``'s FMD sets (static, drift, unrelated) and
for still series with a local change added (below), each frame is moved
onto the first where :func:`~napari_mpid.core.engine.modes.exposure_shift`
says so, the frames are averaged, and each frame's difference to the mean
(scaled to the frame's brightness) is compared with what its noise explains
(:func:`scene_excess`, the ratio of ``static_scene``'s warning,
:func:`~napari_mpid.core.engine.modes.static_excess`): over the whole frame
("global", as ``static_scene``'s warning) and in blocks of 32x32 pixels
("block", the largest block of the frame). A series' figure is the largest
over its frames.

Local changes, added to the still series' frames 2 and 3 (before any
noise is re-drawn: the frames keep their own noise):

moved cell
    a 48x48 square of the frame (centred on the brightest blurred spot)
    replaced by the same square of the frame 4 px to the right (a cell or
    organelle that moved between exposures);
new spot
    a Gaussian spot (sigma 3 px) of 4x the frame's noise standard deviation
    at its peak added at a dim place (a vesicle that appeared);
dimmed region
    a 64x64 square of the frame scaled by 0.8 (local bleaching or a cell
    that changed its expression).

Example::

    python benchmarks/static_detect.py --json benchmarks/results/static_detect.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from stacks import load

from napari_mpid.core.auto.registration import shift_plane
from napari_mpid.core.engine.modes import exposure_shift
from napari_mpid.core.noise import estimate_noise, estimate_noise_channels

#: Side of the blocks in which :func:`scene_excess` compares a frame with its series' mean.
BLOCK = 32


def scene_excess(parts: list[np.ndarray], means: list[np.ndarray], count: int) -> tuple[float, float]:
    """How much more a frame differs from its series' mean than its noise explains: overall, and in its worst block.

    The mean is scaled to the frame's brightness; the noise variance is the
    frame's noise line at the scaled mean, times ``1 - 1/count`` (the frame
    is one of the ``count`` averaged).
    """
    whole, worst = [], []
    for part, mean in zip(parts, means):
        part, mean = np.asarray(part, dtype=np.float64), np.asarray(mean, dtype=np.float64)
        gain = float(np.sum(part * mean) / max(float(np.sum(mean * mean)), 1e-12))
        excess = (part - gain * mean) ** 2
        variance = estimate_noise_channels(part).variance(gain * mean) * (1 - 1 / count)
        whole.append(float(excess.mean() / max(float(variance.mean()), 1e-12)))
        h, w = part.shape[-2:]
        ny, nx = h // BLOCK, w // BLOCK

        def blocks(a: np.ndarray, ny=ny, nx=nx) -> np.ndarray:
            return a[..., : ny * BLOCK, : nx * BLOCK].reshape(-1, ny, BLOCK, nx, BLOCK).mean(axis=(0, 2, 4))

        worst.append(float(np.max(blocks(excess) / np.maximum(blocks(variance), 1e-12))))
    return max(whole), max(worst)


def series_figures(frames: np.ndarray) -> dict[str, float]:
    """Largest global and block excess over the frames of a ``(N, H, W)`` series in [0, 1]."""
    frames = frames.astype(np.float64)
    moved = [frames[0]]
    for frame in frames[1:]:
        shift = exposure_shift(frames[0], frame)
        moved.append(frame if shift is None else shift_plane(frame, shift))
    mean = np.mean(moved, axis=0)
    found = [scene_excess(m[None], mean[None], len(frames)) for m in moved]
    return {"global": max(f[0] for f in found), "block": max(f[1] for f in found)}


def with_change(frames: np.ndarray, kind: str) -> np.ndarray:
    """The still series ``frames`` (uint8) with a local change in frames 2 and 3, in [0, 1]."""
    out = frames.astype(np.float64) / 255.0
    h, w = out.shape[1:]
    smooth = gaussian_filter(out[0], 4)
    sigma = estimate_noise(out[0]).sigma
    if kind == "moved cell":
        y, x = np.unravel_index(np.argmax(smooth[32:-32, 32:-36]), (h - 64, w - 68))
        y, x = y + 8, x + 8  # top-left of the 48x48 square around the peak
        for k in (2, 3):
            out[k, y : y + 48, x : x + 48] = out[k, y : y + 48, x + 4 : x + 52]
    elif kind == "new spot":
        y, x = np.unravel_index(np.argmin(smooth[16:-16, 16:-16]), (h - 32, w - 32))
        yy, xx = np.mgrid[:h, :w]
        spot = 4 * sigma * np.exp(-((yy - y - 16) ** 2 + (xx - x - 16) ** 2) / (2 * 3.0**2))
        out[2:] += spot
    elif kind == "dimmed region":
        y, x = h // 2 - 32, w // 2 - 32
        out[2:, y : y + 64, x : x + 64] *= 0.8
    else:
        raise ValueError(kind)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for dataset in ("static", "drift", "unrelated"):
        for item in load(dataset):
            rows.setdefault(dataset, {})[item["name"]] = series_figures(item["noisy"] / 255.0)
            if dataset == "static":
                for kind in ("moved cell", "new spot", "dimmed region"):
                    rows.setdefault(kind, {})[item["name"]] = series_figures(with_change(item["noisy"], kind))
    print(f"{'set':<14} {'global min-max':>16} {'block min-max':>16}")
    for name, per in rows.items():
        g = [v["global"] for v in per.values()]
        b = [v["block"] for v in per.values()]
        print(f"{name:<14} {min(g):7.2f}-{max(g):<8.2f} {min(b):7.2f}-{max(b):<8.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
