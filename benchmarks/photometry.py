"""Spot photometry: what the presets do to small bright spots.

A flat plane of 500 counts with three 3x3 spots of 20,000 counts each
(smaller than the optical resolution of a typical widefield image, as
single molecules, vesicles or puncta appear), Poisson noise, uint16. For
each spot: the integrated intensity (sum of a 7x7 window around it minus
the window's area times the local background, the median of the ring
between the 7x7 and 11x11 windows) and the peak (brightest pixel of the
3x3 spot minus that background), both as a fraction of the clean plane's.

    python benchmarks/photometry.py [--sizes 96] [--seeds 0 1 2] [--presets fast quality auto]
        [--json benchmarks/results/photometry.json]

Sizes after the first get only the first seed (one large plane takes
minutes on a CPU, the quality preset five times as long as fast).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from napari_mpid.api import denoise
from napari_mpid.core.params import preset
from napari_mpid.synthetic import spot_photometry, spot_plane


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[96])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--presets", nargs="+", default=["fast", "quality", "auto"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    rows = []
    for number, size in enumerate(args.sizes):
        for seed in args.seeds if number == 0 else args.seeds[:1]:
            clean, noisy, centres = spot_plane(size, seed)
            truth = [spot_photometry(clean, c) for c in centres]
            for name in args.presets:
                start = time.perf_counter()
                result = denoise(noisy, preset(name, seed=0, device="cpu"))
                seconds = time.perf_counter() - start
                measured = [spot_photometry(result.denoised, c) for c in centres]
                row = {
                    "size": size,
                    "seed": seed,
                    "preset": name,
                    "seconds": round(seconds, 1),
                    "integrated": [round(m[0] / t[0], 3) for m, t in zip(measured, truth)],
                    "peak": [round(m[1] / t[1], 3) for m, t in zip(measured, truth)],
                }
                rows.append(row)
                print(
                    f"{size}x{size} seed {seed} {name:8s} {seconds:6.1f} s  integrated "
                    f"{' '.join(f'{v:.0%}' for v in row['integrated'])}  peak "
                    f"{' '.join(f'{v:.0%}' for v in row['peak'])}",
                    flush=True,
                )
    for name in args.presets:
        mine = [r for r in rows if r["preset"] == name]
        integrated = [v for r in mine for v in r["integrated"]]
        peak = [v for r in mine for v in r["peak"]]
        print(f"{name:8s} integrated {min(integrated):.0%}-{max(integrated):.0%}, peak {min(peak):.0%}-{max(peak):.0%}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
