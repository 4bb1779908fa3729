"""Do the blurs' slopes under correlated noise limit the mix on FMD's wide-field images?

Not a test: a measurement for docs/benchmarks.md ("Noise estimate"). Under
spatially correlated noise the risk of a blur counts how much it follows the
pixel's noise: ``sum k(dy) k(dx) a(dy, dx)`` over the kernel ``k`` and the
noise's autocorrelation ``a``, which the auto preset models from the lag-1
correlation alone (white noise blurred by [s, 1, s]:
:func:`napari_mpid.core.noise.noise_autocorrelation`). FMD's wide-field noise
reaches further (lag-2 0.20-0.26 on BPAE_B and _R, the model says 0.12-0.13).
For every wide-field FMDD image this replays :func:`napari_mpid.core.auto.combine`
(no network, as the auto preset runs there) with the modelled slopes and with
slopes from the autocorrelation measured against gt (lags -2..2, the gain and
offset of gt fitted), side by side.

    python benchmarks/widefield_slopes.py --captures 1 2 3 4 --json benchmarks/results/widefield_slopes.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from _common import gt_residual, psnr
from mix_nonlinear import images

import napari_mpid.core.auto.risk as risk
from napari_mpid.core.filters import gaussian_kernel
from napari_mpid.core.noise import estimate_noise, noise_autocorrelation


def autocorrelation(residual: np.ndarray, reach: int = 2) -> np.ndarray:
    """``(2 reach + 1)^2`` autocorrelation of a residual plane, lag (0, 0) = 1."""
    r = residual - residual.mean()
    h, w = r.shape
    out = np.zeros((2 * reach + 1, 2 * reach + 1))
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            a = r[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
            b = r[max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)]
            out[dy + reach, dx + reach] = float(np.mean(a * b))
    return out / out[reach, reach]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--captures", nargs="+", default=["1"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    modelled = risk.blur_slope
    rows = []
    for name, noisy, clean, _, _ in images("fmdd", args.captures):
        if not name.startswith("WideField"):
            continue
        residual, _ = gt_residual(noisy, clean)
        measured = autocorrelation(residual)
        noise = estimate_noise(noisy)
        model = np.outer(*(2 * [noise_autocorrelation(noise.correlation)]))

        def slope(sigma: float, _rho: float, a: np.ndarray = measured) -> float:
            g = gaussian_kernel(sigma)
            c = len(g) // 2
            return float(g[c - 2 : c + 3] @ a @ g[c - 2 : c + 3])

        held = np.random.default_rng(0).random(noisy.shape) < 0.04
        row = {
            "image": name,
            "lag-2 measured": round(float(measured[2, 4] + measured[4, 2]) / 2, 3),
            "lag-2 model": round(float(model[2, 4]), 3),
        }
        for label, function in (("modelled slopes", modelled), ("measured slopes", slope)):
            risk.blur_slope = function
            try:
                mixed, _ = risk.combine(noisy[None], {}, held, noise)
            finally:
                risk.blur_slope = modelled
            row[label] = round(psnr(mixed[0], clean), 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {k: round(float(np.mean([r[k] for r in rows])), 3) for k in ("modelled slopes", "measured slopes")}
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "command": "python benchmarks/widefield_slopes.py " + " ".join(argv or sys.argv[1:]),
                    "summary": summary,
                    "rows": rows,
                },
                indent=1,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
