"""Quality benchmark on ../shared/data/eval (FMD test_mix, CSet9): PSNR/SSIM and time.

Not a test: a measurement to run by hand (CPU on crops, GPU on full images)
and to record in docs/benchmarks.md. Prints one line per image and the means,
and writes everything to JSON.

Examples
--------
CPU, 128x128 centre crops of the 12 first FMD captures, fast preset, with the
trivial baselines::

    python benchmarks/eval_quality.py fmd --model real-noise --preset fast \
        --crop 128 --baselines --json bench_out/fmd_fast_ours.json

The MPI authors' checkpoint (reference only, read from ../shared)::

    python benchmarks/eval_quality.py fmd --model ../shared/anchors/mpi_official/ckpts/imgnet_80_95_singlechannel_skip.pth

CSet9 with Gaussian noise sigma 25 (seed 1000 + i for the i-th file in sorted order)::

    python benchmarks/eval_quality.py cset9 --model pixel-independent --mask-ratio 0.3
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from _common import eval_dir, psnr, read_gray, run_to_end
from PIL import Image
from skimage.metrics import structural_similarity

from napari_mpid import __version__
from napari_mpid.api import load_model
from napari_mpid.core.engine import denoise_planes
from napari_mpid.core.params import PRESETS, preset


def load_fmd(crop: int | None, offset: int | None, all_captures: bool) -> list[tuple[str, np.ndarray, np.ndarray]]:
    root = eval_dir("fmd_test_mix")
    names = sorted(p.name for p in (root / "raw").glob("*.png"))
    if not all_captures:
        names = [n for n in names if n.endswith("_1.png")]
    items = []
    for name in names:
        raw = read_gray(root / "raw" / name)
        gt = read_gray(root / "gt" / name)
        if crop:
            o = (raw.shape[0] - crop) // 2 if offset is None else offset
            raw, gt = raw[o : o + crop, o : o + crop], gt[o : o + crop, o : o + crop]
        items.append((name, raw, gt.astype(np.float64) / 255.0))
    return items


def load_cset9(crop: int | None, sigma: float) -> list[tuple[str, np.ndarray, np.ndarray]]:
    items = []
    for i, path in enumerate(sorted(eval_dir("cset9").glob("*.png"))):
        clean = np.asarray(Image.open(path).convert("RGB")).astype(np.float32) / 255.0
        if crop:
            o0, o1 = (clean.shape[0] - crop) // 2, (clean.shape[1] - crop) // 2
            clean = clean[o0 : o0 + crop, o1 : o1 + crop]
        gen = torch.Generator().manual_seed(1000 + i)
        noise = torch.randn(clean.shape[::-1], generator=gen).numpy().transpose(2, 1, 0) * (sigma / 255.0)
        items.append((path.name, (clean + noise).astype(np.float32), clean.astype(np.float64)))
    return items


def score(estimate: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    est = np.clip(estimate, 0.0, 1.0)
    ssim = structural_similarity(clean, est, data_range=1.0, channel_axis=-1 if est.ndim == 3 else None)
    return psnr(est, clean), float(ssim)


def baselines(noisy01: np.ndarray, clean: np.ndarray) -> dict[str, tuple[float, float]]:
    from scipy.ndimage import gaussian_filter
    from skimage.restoration import calibrate_denoiser, denoise_nl_means

    out = {}
    for sigma in (1.0, 1.25, 1.5):
        s = (sigma, sigma, 0) if noisy01.ndim == 3 else sigma
        out[f"gaussian_blur_{sigma}"] = score(gaussian_filter(noisy01.astype(np.float64), s), clean)
    channel_axis = -1 if noisy01.ndim == 3 else None
    grid = {"h": list(np.linspace(0.01, 0.25, 12)), "patch_size": [5], "patch_distance": [6], "fast_mode": [True]}
    if channel_axis is not None:
        grid["channel_axis"] = [-1]
    nlm = calibrate_denoiser(noisy01.astype(np.float64), denoise_nl_means, denoise_parameters=grid)
    out["nl_means_calibrated"] = score(nlm(noisy01.astype(np.float64)), clean)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=("fmd", "cset9"))
    parser.add_argument("--model", default="real-noise")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="fast")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--beta", type=float)
    parser.add_argument("--mask-ratio", type=float)
    parser.add_argument("--lr", type=float, help="Adam learning rate of the filling (default: the preset's)")
    parser.add_argument("--pd", type=int, default=1)
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--crop", type=int, help="centre crop side (CPU); full images when omitted")
    parser.add_argument("--offset", type=int, help="crop offset (both axes) instead of the centre")
    parser.add_argument("--all-captures", action="store_true", help="FMD: all 48 raw images, not the 12 first")
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--limit", type=int, help="only the first N images")
    parser.add_argument("--only", help="only images whose name contains this text")
    parser.add_argument("--baselines", action="store_true", help="also score Gaussian blur and calibrated NL-means")
    parser.add_argument("--no-model", action="store_true", help="baselines only")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    changes = {
        "mask_ratio": args.mask_ratio,  # None: the model's own (0.85 real-noise, 0.30 pixel-independent)
        "pd_factor": args.pd,
        "device": args.device,
        "precision": args.precision,
        "model": args.model,
        "normalization": "dtype" if args.dataset == "fmd" else "none",
    }
    if args.iterations:
        changes["iterations"] = args.iterations
    if args.beta:
        changes["beta"] = args.beta
    if args.lr:
        changes["learning_rate"] = args.lr
    params = preset(args.preset, **changes)
    items = (
        load_fmd(args.crop, args.offset, args.all_captures)
        if args.dataset == "fmd"
        else load_cset9(args.crop, args.sigma)
    )
    if args.only:
        items = [item for item in items if args.only in item[0]]
    if args.limit:
        items = items[: args.limit]

    model = None if args.no_model else load_model(args.model, args.device)
    rows = []
    for name, noisy, clean in items:
        row: dict = {"image": name}
        noisy01 = noisy.astype(np.float64) / 255.0 if noisy.dtype == np.uint8 else noisy.astype(np.float64)
        row["noisy"] = score(noisy01, clean)
        if model is not None:
            torch.manual_seed(0)
            gen = denoise_planes(noisy, params, model=model, axes="YXS" if noisy.ndim == 3 else "YX")
            start = time.perf_counter()
            result = run_to_end(gen)
            if model.network.head.weight.is_cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            den = result.denoised / 255.0 if noisy.dtype == np.uint8 else result.denoised
            row["mpi"] = score(den, clean)
            row["seconds"] = seconds
            row["ms_per_iteration"] = 1000 * seconds / params.iterations
        if args.baselines:
            row.update(baselines(noisy01, clean))
        rows.append(row)
        cells = "  ".join(f"{k} {v[0]:.2f}/{v[1]:.3f}" for k, v in row.items() if isinstance(v, tuple))
        extra = f"  {row['seconds']:.1f} s ({row['ms_per_iteration']:.0f} ms/it)" if "seconds" in row else ""
        print(f"{name:28s} {cells}{extra}", flush=True)

    keys = [k for k, v in rows[0].items() if isinstance(v, tuple)]
    means = {k: (float(np.mean([r[k][0] for r in rows])), float(np.mean([r[k][1] for r in rows]))) for k in keys}
    if "seconds" in rows[0]:
        means["seconds"] = float(np.mean([r["seconds"] for r in rows]))
        means["ms_per_iteration"] = float(np.mean([r["ms_per_iteration"] for r in rows]))
    print(
        "MEAN "
        + "  ".join(f"{k} {v[0]:.2f}/{v[1]:.3f}" if isinstance(v, tuple) else f"{k} {v:.2f}" for k, v in means.items())
    )
    device = str(model.network.head.weight.device) if model is not None else "cpu"
    if device.startswith("cuda"):
        device += f" ({torch.cuda.get_device_name()})"
    else:
        device += f" ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    report = {
        "dataset": args.dataset,
        "crop": args.crop,
        "offset": args.offset,
        "params": params.to_dict(),
        "model": args.model,
        "model_sha256": model.sha256 if model else None,
        "device": device,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "napari_mpid": __version__,
        "torch": str(torch.__version__),
        "rows": rows,
        "mean": means,
        "argv": sys.argv[1:],
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
