"""Exploration for the auto preset (issue 12): one filling per image, several ways to finish it.

For each FMD crop of a noise level: fill with held-out pixels (mask ratio as
given), then score against gt (a) the filled plane, (b) its fusion with the
noisy pixel, (c) the held-out blend with a blur, (d) fusion then blend, next
to the oracle blur. Not a test; run by hand.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from napari_mpid.api import load_model
from napari_mpid.core.auto import HOLDOUT_FRACTION, EarlyStop, blend, finish, fuse
from napari_mpid.core.devices import resolve_precision
from napari_mpid.core.filling import IterativeFiller
from napari_mpid.core.noise import estimate_noise

EVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "eval" / "fmd_test_mix"
SIGMAS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)


def psnr(a, b):
    return float(10 * np.log10(1 / np.mean((np.clip(a, 0, 1) - b) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--level", default="raw")
    parser.add_argument("--model", default="real-noise")
    parser.add_argument("--mask-ratio", type=float)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--early-stop", action="store_true")
    parser.add_argument("--only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, "cpu")
    precision = resolve_precision("auto", torch.device("cpu"))
    rows = []
    names = sorted(p.name for p in (EVAL / args.level).glob("*_1.png"))
    for name in names:
        if args.only and args.only not in name:
            continue
        full = np.asarray(Image.open(EVAL / args.level / name).convert("L")).astype(np.float64) / 255
        gt = np.asarray(Image.open(EVAL / "gt" / name).convert("L")).astype(np.float64)[192:320, 192:320] / 255
        x = full[192:320, 192:320]
        oracle = max(psnr(gaussian_filter(full, s)[192:320, 192:320], gt) for s in SIGMAS)
        noise = estimate_noise(x)
        ratio = args.mask_ratio or (0.85 if noise.correlation >= 0.3 else 0.5)
        held = (torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) < HOLDOUT_FRACTION).numpy()
        filler = IterativeFiller(
            model.network,
            model.state,
            beta=0.9,
            mask_ratio=ratio,
            learning_rate=2e-3,
            precision=precision,
            channels_last=precision == "bfloat16",
        )
        image = torch.from_numpy(x.astype(np.float32))[None, None]
        holdout = torch.from_numpy(held.astype(np.float32))[None, None]
        stopper, best, stopped = EarlyStop(), None, args.iterations
        start = time.perf_counter()
        steps = filler.run(image, args.iterations, generator=torch.Generator().manual_seed(0), holdout=holdout)
        for t in steps:
            if args.early_stop:
                improved, stop = stopper.update(filler.validation[:t].numpy())
                if improved:
                    best = filler.held_out_average().clone()
                if stop:
                    stopped = t
                    steps.close()
                    break
        seconds = time.perf_counter() - start
        filled = (best if best is not None else filler.held_out_average())[0].float().numpy().astype(np.float64)
        noisy = x[None]
        fused, fusion = fuse(noisy, filled, held, noise)
        blended, choice = blend(noisy, filled, held, noise.correlation)
        finished, how = finish(noisy, filled, held, noise)
        row = {
            "image": name, "noisy": psnr(x, gt), "oracle_blur": oracle, "filled": psnr(filled[0], gt),
            "fused": psnr(fused[0], gt), "blend": psnr(blended[0], gt), "finish": psnr(finished[0], gt),
            "sigma": noise.sigma, "corr": noise.correlation, "mask": ratio, "stopped": stopped, "seconds": seconds,
            "fusion": fusion.describe(), "blend_choice": choice.describe(), "finish_how": how.describe(),
        }  # fmt: skip
        rows.append(row)
        print(
            " ".join(
                f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                for k, v in row.items()
                if k not in ("fusion", "blend_choice", "finish_how")
            ),
            flush=True,
        )
    keys = ["noisy", "oracle_blur", "filled", "fused", "blend", "finish"]
    means = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    print(args.level, json.dumps({k: round(v, 2) for k, v in means.items()}))
    if args.json:
        args.json.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "means": means, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
