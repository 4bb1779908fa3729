"""What the network adds, and what it costs, on single planes: auto with and without it, beside the blurs.

Not a test: a measurement to run by hand and record in docs/benchmarks.md
("The network's value and cost").

Datasets (from ../shared/data/eval, never copied):

fmdd
    FMD test_mix raw, full 512x512 images (``--captures 1`` the 12 first
    captures, ``--captures 1 2 3 4`` all 48), against gt.
ladder
    The noise ladder: the centre 128x128 crop at (192, 192) of capture 1 of
    every configuration at raw, avg2, avg4 and avg8 (``--levels``).
cset9
    CSet9 centre 128x128 crops with Gaussian noise sigma 25 (seed 1000 + i),
    as benchmarks/eval_quality.py makes them.

Variants (``--variants``): ``auto`` (the defaults: the network runs where
:func:`napari_mpid.core.auto.network_decision` says it earns its time),
``never`` (the auto preset's mix alone, ``--iterations 0``), ``always``
(the network on every plane: the defaults before that decision),
``fast`` (the paper's filling alone). Every row also scores the noisy
image, a Gaussian blur of fixed sigma 1.25 and the best blur per image
over sigma 0.5-4 (chosen with the clean image: an oracle, not a method).

Examples::

    python benchmarks/network_value.py fmdd --captures 1 --variants auto always --json bench_out/fmdd_12.json
    python benchmarks/network_value.py ladder --variants auto never --json bench_out/ladder_network.json
    python benchmarks/network_value.py cset9 --model pixel-independent --variants auto never --json bench_out/cset9.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from _common import FMD_CROP, eval_dir, psnr, read_gray, run_to_end
from PIL import Image
from scipy.ndimage import gaussian_filter

from napari_mpid.core.engine import denoise_planes
from napari_mpid.core.params import preset

#: Blur widths of the per-image oracle (wider than the ladder's, as the FMDD table's).
ORACLE = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)
FIXED = 1.25
VARIANTS = {
    "auto": ("auto", {}),
    "never": ("auto", {"iterations": 0}),
    "always": ("auto", {"network": "always"}),
    "fast": ("fast", {}),
}


def items(dataset: str, captures: list[str], levels: list[str], limit: int | None):
    """(name, noisy as stored, clean in [0, 1], axes) of the dataset's images."""
    out = []
    if dataset in ("fmdd", "ladder"):
        root = eval_dir("fmd_test_mix")
        configs = sorted({p.name.rsplit("_", 1)[0] for p in (root / "raw").glob("*.png")})[:limit]
        for level in ["raw"] if dataset == "fmdd" else levels:
            for capture in captures if dataset == "fmdd" else ["1"]:
                for config in configs:
                    name = f"{config}_{capture}.png"
                    noisy, clean = read_gray(root / level / name), read_gray(root / "gt" / name) / 255.0
                    if dataset == "ladder":
                        noisy, clean = noisy[FMD_CROP], clean[FMD_CROP]
                    out.append((f"{level}/{name}", noisy, clean, "YX"))
    else:
        for i, path in enumerate(sorted(eval_dir("cset9").glob("*.png"))[:limit]):
            clean = np.asarray(Image.open(path).convert("RGB")).astype(np.float32) / 255.0
            o0, o1 = (clean.shape[0] - 128) // 2, (clean.shape[1] - 128) // 2
            clean = clean[o0 : o0 + 128, o1 : o1 + 128]
            gen = torch.Generator().manual_seed(1000 + i)
            noise = torch.randn(clean.shape[::-1], generator=gen).numpy().transpose(2, 1, 0) * (25 / 255.0)
            out.append((path.name, (clean + noise).astype(np.float32), clean.astype(np.float64), "YXS"))
    return out


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter(image, (sigma, sigma, 0) if image.ndim == 3 else sigma)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", choices=("fmdd", "ladder", "cset9"))
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=["auto", "never"])
    parser.add_argument("--captures", nargs="+", default=["1"], help="fmdd: which captures (1-4)")
    parser.add_argument("--levels", nargs="+", default=["raw", "avg2", "avg4", "avg8"], help="ladder levels")
    parser.add_argument("--limit", type=int, help="first N configurations / images only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="real-noise", help="cset9 was measured with pixel-independent")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    rows = []
    for name, noisy, clean, axes in items(args.dataset, args.captures, args.levels, args.limit):
        unit = noisy / 255.0 if noisy.dtype == np.uint8 else noisy.astype(np.float64)
        row = {"image": name, "noisy": psnr(unit, clean), f"blur {FIXED:g}": psnr(blur(unit, FIXED), clean)}
        row["oracle blur"], row["oracle sigma"] = max((psnr(blur(unit, s), clean), s) for s in ORACLE)
        for variant in args.variants:
            name_of_preset, changes = VARIANTS[variant]
            params = preset(
                name_of_preset,
                device=args.device,
                model=args.model,
                precision=args.precision,
                # as eval_quality.py: CSet9's noisy floats as they are (they leave [0, 1])
                normalization="none" if args.dataset == "cset9" else "auto",
                **changes,
            )
            start = time.perf_counter()
            result = run_to_end(denoise_planes(noisy, params, axes=axes, noise_map=False))
            seconds = time.perf_counter() - start
            out = result.denoised / 255.0 if noisy.dtype == np.uint8 else result.denoised
            row[variant] = psnr(out, clean)
            row[f"{variant} seconds"] = seconds
            row[f"{variant} produced by"] = result.produced_by()
            row[f"{variant} network planes"] = sum(1 for c in result.choices if c.get("network", True)) or (
                0 if result.choices else 1
            )
        rows.append(row)
        print(
            f"{name:38s} noisy {row['noisy']:6.2f} blur {row[f'blur {FIXED:g}']:6.2f} oracle {row['oracle blur']:6.2f}  "
            + "  ".join(f"{v} {row[v]:6.2f} ({row[f'{v} seconds']:.1f} s)" for v in args.variants),
            flush=True,
        )
    keys = ["noisy", f"blur {FIXED:g}", "oracle blur", *args.variants]
    summary = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    summary.update({f"{v} median seconds": statistics.median(r[f"{v} seconds"] for r in rows) for v in args.variants})
    if args.dataset == "ladder":
        for level in args.levels:
            chosen = [r for r in rows if r["image"].startswith(f"{level}/")]
            summary[level] = {k: float(np.mean([r[k] for r in chosen])) for k in keys}
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "dataset": args.dataset,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.processor() or platform.machine()}, {args.threads} thread(s), {args.device}",
            "command": "python benchmarks/network_value.py " + " ".join(argv or __import__("sys").argv[1:]),
            "summary": summary,
            "rows": rows,
        }
        args.json.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
