"""The FMD noise ladder (issue 12): presets against blur baselines at five noise levels.

FMD test_mix holds the same 12 fields as single captures (raw) and as means
of 2, 4, 8 and 16 captures (avg2...avg16), all against one gt. For every
level and image: the centre 128x128 crop at (192, 192) of capture 1,
denoised by each preset with our bundled model (uint8 in, CLI defaults
otherwise), next to the noisy crop, the best fixed blur of the level and
the blur with the best sigma per image (the oracle; blur on the full 512x512
image, then cropped). PSNR with data range 1 against gt/255.

Also, per image, the capture's brightness against gt (the least-squares
gain of the noisy crop on gt: FMD's captures differ from the 50-capture gt
by up to 14 %) and every score again after the best gain of that estimate
("gain-matched", as benchmarks/stacks.py): a denoiser estimates the
capture's own signal, brightness included, which the protocol charges to it.

Not a test. Run by hand, one job at a time::

    python benchmarks/ladder.py --levels raw avg2 avg4 avg8 --presets auto fast --json bench_out/ladder.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from _common import FMD_CROP, eval_dir, fmd_first_captures, psnr, psnr_gain_matched, read_gray, read_unit, run_to_end
from scipy.ndimage import gaussian_filter

from napari_mpid import __version__
from napari_mpid.api import load_model
from napari_mpid.core.engine import denoise_planes
from napari_mpid.core.params import preset

#: Blur widths of the oracle and of the best fixed blur (wider than ORACLE_SIGMAS: wide-field
#: images want more than sigma 2).
SIGMAS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)
CROP = FMD_CROP


def gain_matched(estimate: np.ndarray, clean: np.ndarray) -> float:
    """PSNR after the best gain, fitted on the estimate as it is (not clipped first)."""
    return psnr_gain_matched(estimate, clean, clip_first=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", nargs="+", default=["raw", "avg2", "avg4", "avg8"])
    parser.add_argument("--presets", nargs="+", default=["auto", "fast"])
    parser.add_argument("--model", default="real-noise")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, args.device)
    root = eval_dir("fmd_test_mix")
    names = fmd_first_captures()[: args.limit]
    rows = []
    for level in args.levels:
        for name in names:
            full = read_gray(root / level / name)
            gt = read_unit(root / "gt" / name)[CROP]
            blurred = {s: gaussian_filter(full / 255.0, s)[CROP] for s in SIGMAS}
            blurs = {s: psnr(b, gt) for s, b in blurred.items()}
            noisy = full[CROP] / 255.0
            row = {"level": level, "image": name, "noisy": psnr(noisy, gt), "blur": blurs,
                   "capture gain": float((noisy * gt).sum() / (gt * gt).sum()),
                   "blur gain-matched": {s: gain_matched(b, gt) for s, b in blurred.items()}}  # fmt: skip
            for name_p in args.presets:
                params = preset(name_p, model=args.model, device=args.device)
                start = time.perf_counter()
                gen = denoise_planes(np.ascontiguousarray(full[CROP]), params, model=model, noise_map=False)
                result = run_to_end(gen)
                row[name_p] = psnr(result.denoised / 255.0, gt)
                row[name_p + " gain-matched"] = gain_matched(result.denoised / 255.0, gt)
                row[name_p + " seconds"] = time.perf_counter() - start
                if result.choices:
                    row[name_p + " choices"] = result.choices
            rows.append(row)
            shown = "  ".join(f"{p} {row[p]:.2f} ({row[p + ' seconds']:.0f} s)" for p in args.presets)
            print(f"{level:6s} {name:26s} noisy {row['noisy']:.2f}  oracle blur {max(blurs.values()):.2f}  {shown}",
                  flush=True)  # fmt: skip
    summary = {}
    for level in args.levels:
        items = [r for r in rows if r["level"] == level]
        fixed = {s: float(np.mean([r["blur"][s] for r in items])) for s in SIGMAS}
        best_fixed = max(fixed, key=fixed.get)
        summary[level] = {
            "noisy": float(np.mean([r["noisy"] for r in items])),
            "best fixed blur": fixed[best_fixed],
            "best fixed sigma": best_fixed,
            "oracle blur": float(np.mean([max(r["blur"].values()) for r in items])),
            **{p: float(np.mean([r[p] for r in items])) for p in args.presets},
            **{p + " seconds": float(np.mean([r[p + " seconds"] for r in items])) for p in args.presets},
            **{p + " worst vs oracle": float(min(r[p] - max(r["blur"].values()) for r in items)) for p in args.presets},
            # The oracle (sigma 0.5-2), both sides gain-matched.
            **{
                p + " worst vs oracle 0.5-2, gain-matched": float(
                    min(
                        r[p + " gain-matched"] - max(v for s, v in r["blur gain-matched"].items() if s <= 2.0)
                        for r in items
                    )
                )
                for p in args.presets
            },
        }
        print(level, json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in summary[level].items()}))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "model": args.model,
                    "device": f"{args.device} ({platform.machine()}, {args.threads} threads)",
                    "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "version": __version__,
                    "summary": summary,
                    "rows": rows,
                },
                indent=1,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
