"""What non-linear candidates add to the auto preset's mix on FMDD, with a risk estimate for Poisson-Gaussian noise.

Not a test: a measurement for issue 20 (items 1-2), to run by hand and
record in docs/benchmarks.md ("Non-linear candidates in the mix"). For
every FMD test_mix raw image (full 512x512) of the chosen captures, side
by side in one run:

- ``mix``: the auto preset's result on these images, the all-pixel mix of
  :func:`napari_mpid.core.auto.combine` with no network (the auto preset
  runs none on FMD: its noise is shot noise or spatially correlated);
- ``mix + <family>``: the same design with a non-linear family's outputs
  added as candidates (benchmarks/pg_risk.py), each penalised by its
  Monte-Carlo divergence under the per-pixel variance of the noise-level
  line; ``mix + all`` with every family;
- the same two with the noise variance measured against gt (gain and
  offset of gt fitted; gt is the mean of 50 captures that include the
  image's, so the residual holds 49/50 of its variance): how much of what
  is left is the variance estimate's;
- baselines: the noisy image, a Gaussian blur of sigma 1.25, the best blur
  per image over sigma 0.5-4 (chosen with gt: an oracle, not a method);
- per candidate: its own PSNR, and its estimated risk beside its squared
  error against gt (gain and offset fitted), a check of the risk estimate
  on real data (gt carries 1/50 of a capture's noise, some of it this
  capture's own).

Seconds are wall time on one thread: the mix alone, and per family the
candidates, their divergence and the mix.

Development subset: capture 1 (``--captures 1``, the 12 ``*_1`` images);
held out: captures 2-4.

    python benchmarks/pg_candidates.py --captures 1 --json benchmarks/results/pg_candidates_dev.json
    python benchmarks/pg_candidates.py --captures 2 3 4 --json benchmarks/results/pg_candidates_heldout.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pg_risk
import torch
from _common import eval_dir, gt_residual, psnr, read_unit
from scipy.ndimage import gaussian_filter

from napari_mpid.core.auto import CORRELATED, combine
from napari_mpid.core.noise import NoiseEstimate, estimate_noise

#: Blur widths of the per-image oracle (as benchmarks/network_value.py's FMDD table).
ORACLE = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)
FIXED = 1.25


def families(noise: NoiseEstimate):
    """name -> function of a ``(H, W)`` plane returning the family's named outputs (none: not on this plane).

    ``bands`` only on pixel-independent noise: on FMD's wide-field planes
    (lag-1 correlation ~0.6) its risk under the [s, 1, s] correlation model
    misleads the mix (docs/benchmarks.md, "Non-linear candidates in the mix").
    """
    white = noise.correlation < CORRELATED
    return {
        "wiener": lambda z: pg_risk.adaptive_wiener(z, noise),
        "bands": (lambda z: pg_risk.band_shrink(z, noise, noise.correlation)) if white else (lambda z: {}),
        "bands everywhere": lambda z: pg_risk.band_shrink(z, noise, noise.correlation),
        "nlm": lambda z: pg_risk.nl_means(z, noise),
        "nlm wide": lambda z: pg_risk.nl_means(z, noise, hs=(0.4, 0.7, 1.2, 2.0), blurred=(1.0,)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--captures", nargs="+", default=["1"])
    parser.add_argument("--families", nargs="+", default=["wiener", "bands", "nlm"])
    parser.add_argument("--all", nargs="+", default=["bands", "nlm"], help="the families of 'mix + all'")
    parser.add_argument("--limit", type=int, help="first N configurations only")
    parser.add_argument(
        "--second-order", action="store_true", help="add the second-order Poisson term (pg_risk.mc_poisson_curvature)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    root = eval_dir("fmd_test_mix")
    configs = sorted({p.name.rsplit("_", 1)[0] for p in (root / "raw").glob("*.png")})[: args.limit]
    rows = []
    for capture in args.captures:
        for config in configs:
            name = f"{config}_{capture}.png"
            noisy, clean = read_unit(root / "raw" / name), read_unit(root / "gt" / name)
            residual, fitted = gt_residual(noisy, clean)
            measured = float(np.mean(residual**2)) * 50 / 49
            row: dict = {
                "image": name,
                "noisy": psnr(noisy, clean),
                f"blur {FIXED:g}": psnr(gaussian_filter(noisy, FIXED), clean),
            }
            row["oracle blur"], row["oracle sigma"] = max((psnr(gaussian_filter(noisy, s), clean), s) for s in ORACLE)

            start = time.perf_counter()
            noise = estimate_noise(noisy)
            held = np.random.default_rng(0).random(noisy.shape) < 0.04
            shipped, _ = combine(noisy[None], {}, held, noise)
            row["mix seconds"] = time.perf_counter() - start
            row["mix"] = psnr(shipped[0], clean)
            variance = float(np.mean(noise.variance(noisy)))
            row["variance / measured"] = variance / measured
            base, _, _ = pg_risk.mix(noisy, noise, variance)
            if not np.allclose(base, shipped[0], atol=1e-9):
                raise AssertionError(f"{name}: pg_risk.mix without candidates differs from combine")
            row["mix, measured variance"] = psnr(pg_risk.mix(noisy, noise, measured)[0], clean)

            std = np.sqrt(pg_risk.pixel_variance(noisy, noise, variance))
            # The Poisson term of second order (pg_risk.mc_poisson_curvature), on shot-noise planes only:
            # correlated noise is described by the correlation model alone.
            second_order = args.second_order and noise.correlation < CORRELATED and noise.gain > 0
            everything: dict[str, tuple[np.ndarray, float]] = {}
            row["candidates"], row["families"] = {}, {}
            for family, function in families(noise).items():
                if family not in args.families:
                    continue
                start = time.perf_counter()
                outputs = function(noisy)
                divergence = pg_risk.mc_divergence(function, noisy, std, max(noise.correlation, 0.0), outputs)
                if second_order and outputs:
                    curvature = pg_risk.mc_poisson_curvature(function, noisy, noise.gain, noise.offset, outputs)
                    divergence = {k: d - curvature[k] for k, d in divergence.items()}
                extra = {k: (outputs[k], divergence[k]) for k in outputs}
                mixed, _, weights = pg_risk.mix(noisy, noise, variance, extra)
                row[f"mix + {family} seconds"] = time.perf_counter() - start + row["mix seconds"]
                row[f"mix + {family}"] = psnr(mixed, clean)
                row[f"mix + {family} weights"] = {k: round(w, 4) for k, w in weights.items() if w}
                everything.update(extra)
                row["families"][family] = list(extra)
                for k, (out, d) in extra.items():
                    row["candidates"][k] = {
                        "psnr": psnr(out, clean),
                        "risk estimate": pg_risk.risk(out, noisy, std**2, d),
                        "error against gt": float(np.mean((out - fitted) ** 2)),
                        "divergence / variance": d / variance,
                    }
            chosen = [f for f in args.all if f in args.families]
            everything = {k: c for k, c in everything.items() if any(k in row["families"][f] for f in chosen)}
            if len(chosen) > 1:
                row["mix + all"] = psnr(pg_risk.mix(noisy, noise, variance, everything)[0], clean)
                row["mix + all seconds"] = (
                    sum(row[f"mix + {f} seconds"] for f in chosen) - (len(chosen) - 1) * row["mix seconds"]
                )
            scaled = {k: (c, d * measured / variance) for k, (c, d) in everything.items()}
            row["mix + all, measured variance"] = psnr(pg_risk.mix(noisy, noise, measured, scaled)[0], clean)
            rows.append(row)
            shown = "  ".join(
                f"{k} {row[k]:6.2f}" for k in row if k.startswith("mix") and not k.endswith(("seconds", "weights"))
            )
            print(
                f"{name:28s} blur {row[f'blur {FIXED:g}']:6.2f} oracle {row['oracle blur']:6.2f}  {shown}", flush=True
            )
    keys = [k for k in rows[0] if isinstance(rows[0][k], float) and k != "oracle sigma"]
    summary = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    summary.update({f"{k} median": float(np.median([r[k] for r in rows])) for k in keys if k.endswith("seconds")})
    summary["families of all"] = [f for f in args.all if f in args.families]
    for family in [*args.families, "all"]:
        if f"mix + {family}" in summary:
            gains = np.array([r[f"mix + {family}"] - r["mix"] for r in rows])
            summary[f"gain of {family}"] = {
                "mean": float(gains.mean()),
                "min": float(gains.min()),
                "max": float(gains.max()),
            }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "what": "FMD test_mix raw, full images: the auto preset's mix with non-linear candidates (benchmarks/pg_risk.py)",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.processor() or platform.machine()}, 1 thread, shared 2-core CPU",
            "command": "python benchmarks/pg_candidates.py " + " ".join(argv or __import__("sys").argv[1:]),
            "summary": summary,
            "rows": rows,
        }
        args.json.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
