"""Which intensity scaling loses nothing against the paper's /255 on 8-bit data (issue 9, item 2).

Three FMD crops (Confocal_FISH_1, WideField_BPAE_B_1, TwoPhoton_MICE_1; 128x128 at
(192, 192); the crops the reference results use), the authors' single-channel
weights, the fast preset, seeds 0 and 1, uint8 input as the CLI reads it. Each
variant maps the uint8 plane to [0, 1] with another (low, high) and maps the
result back; PSNR against gt/255 after clipping. Not a test: run by hand::

    python benchmarks/scaling.py --json bench_out/scaling.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from _common import ANCHOR_CHECKPOINTS, eval_dir, psnr, read_gray, run_to_end

from napari_mpid.core.engine import denoise_planes
from napari_mpid.core.params import preset
from napari_mpid.core.run import normalization

REF = ANCHOR_CHECKPOINTS / "imgnet_80_95_singlechannel_skip.pth"
NAMES = ("Confocal_FISH_1.png", "WideField_BPAE_B_1.png", "TwoPhoton_MICE_1.png")


def crops(offset: int = 192, size: int = 128):
    root = eval_dir("fmd_test_mix")
    for name in NAMES:
        raw = read_gray(root / "raw" / name)[offset : offset + size, offset : offset + size]
        gt = read_gray(root / "gt" / name)[offset : offset + size, offset : offset + size]
        yield name, raw, gt.astype(np.float64) / 255.0


def fixed(low_high):
    """A scales.scale_from_sample replacement: (low, high) from the sampled values (all, for these crops)."""

    def fit(sample, low, high, policy):
        low, high = low_high(np.asarray(sample, dtype=np.float64))
        return normalization.IntensityScale(float(low), float(high), 0)

    return fit


#: name -> (policy name or fit_scale replacement, camera gain). A gain of 16 turns the
#: 8-bit crop into what a 12-bit camera would record (uint16, 0-4080).
VARIANTS = {
    "auto (policy, default)": ("auto", 1),
    "percentile+headroom (policy)": ("percentile", 1),
    "dtype /255 (policy)": ("dtype", 1),
    "minmax (policy)": ("minmax", 1),
    "[0, max]": (fixed(lambda d: (0.0, d.max())), 1),
    "[p0.1, p99.9]": (fixed(lambda d: tuple(np.percentile(d, (0.1, 99.9)))), 1),
    "[0, p99.9 + 10%]": (fixed(lambda d: (0.0, np.percentile(d, 99.9) * 1.1)), 1),
    "[min - 10%, max + 10%]": (fixed(lambda d: (d.min() - 0.1 * np.ptp(d), d.max() + 0.1 * np.ptp(d))), 1),
    "[0, 510] (2x dimmer than /255)": (fixed(lambda d: (0.0, 510.0)), 1),
    "[0, 1020] (4x dimmer than /255)": (fixed(lambda d: (0.0, 1020.0)), 1),
    "12-bit camera, auto": ("auto", 16),
    "12-bit camera, percentile+headroom": ("percentile", 16),
}


def run(model: str, variants: list[str], seeds: list[int], precision: str) -> dict:
    results = {}
    from napari_mpid.core.run import scales

    original = scales.scale_from_sample

    for variant in variants:
        how, gain = VARIANTS[variant]
        policy = how if isinstance(how, str) else "percentile"
        scales.scale_from_sample = how if callable(how) else original
        scores = []
        for name, raw, gt in crops():
            data = raw if gain == 1 else (raw.astype(np.uint16) * gain)
            for seed in seeds:
                params = preset("fast", model=model, seed=seed, normalization=policy, precision=precision)
                result = run_to_end(denoise_planes(data, params))
                score = psnr(result.denoised / (255.0 * gain), gt)
                scores.append({"image": name, "seed": seed, "psnr": score, "scales": result.scales})
                print(f"{variant:32s} {name:24s} seed {seed}: {score:.2f}", flush=True)
        scales.scale_from_sample = original
        mean = float(np.mean([s["psnr"] for s in scores]))
        print(f"{variant:32s} mean {mean:.2f}", flush=True)
        results[variant] = {"mean": mean, "runs": scores}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REF))
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = run(args.model, args.variants, args.seeds, args.precision)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"model": args.model, "precision": args.precision, "results": results}, indent=1)
        )


if __name__ == "__main__":
    main()
