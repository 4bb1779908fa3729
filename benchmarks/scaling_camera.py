"""Intensity scaling of a dim camera stack: the demo's synthetic uint16 stack, two scalings side by side.

The stack (``napari_mpid.synthetic.fluorescence_stack``: Poisson photons on a
camera offset of 100 counts, read noise 3) holds values of about 90-150 in a
uint16 file. Scaled by its bit depth (values below 256 -> /255, the same
arithmetic as feeding the values as uint8, which is what the "auto" policy
does for uint8 data only) the planes span ~0.35-0.6; scaled by percentiles
(what "auto" does for wider integers) they span ~0.1-0.9. PSNR against the
clean stack, with the clean stack's span as data range and no clipping
(camera counts, not [0, 1]: not the other scripts' ``_common.psnr``).

    python benchmarks/scaling_camera.py [--planes 3 --size 128] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import datetime, timezone

import numpy as np
import torch

from napari_mpid import __version__, denoise, preset
from napari_mpid.synthetic import fluorescence_stack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", type=int, default=3)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    noisy, clean = fluorescence_stack(planes=args.planes, size=args.size, seed=0)
    assert noisy.max() < 256, "the bit-depth rule divides by 255 only for values below 256"
    span = float(clean.max() - clean.min())

    def psnr(x: np.ndarray) -> float:
        return float(10 * np.log10(span**2 / np.mean((x.astype(np.float64) - clean) ** 2)))

    inputs = {"bit depth (/255)": noisy.astype(np.uint8), "percentile": noisy}
    rows = []
    print(f"noisy {psnr(noisy):.2f} dB")
    for name, context in (("fast", 0), ("auto", 0), ("auto", 1)):
        row = {"preset": name, "context": context}
        for scaling, data in inputs.items():
            result = denoise(data, preset(name, context=context, device="cpu"), axes="ZYX")
            row[scaling] = psnr(result.denoised)
            row[scaling + " scale"] = list(result.scales[0])
        rows.append(row)
        print(f"{name:5s} context {context}: " + "  ".join(f"{s} {row[s]:.2f}" for s in inputs), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "stack": f"fluorescence_stack(planes={args.planes}, size={args.size}, seed=0)",
                    "noisy": psnr(noisy),
                    "device": f"cpu ({platform.machine()}, {args.threads} threads)",
                    "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "version": __version__,
                    "rows": rows,
                },
                fh,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
