"""What the non-linear candidates (NL-means, shrunk bands) earn in the auto preset's mix, and what they cost.

Not a test: a measurement for docs/benchmarks.md ("Non-linear candidates in
the mix"). Side by side in one run, for every image of the chosen set:

- ``linear``: the mix without non-linear candidates (the auto preset before
  they joined: noisy pixel, blurs, intensity-dependent weights);
- ``+ nlm``, ``+ nlm prefiltered``, ``+ bands``: one family added;
  ``no prefiltered nlm``: NL-means and bands; ``default``: all three (the
  auto preset as shipped, :data:`napari_mpid.core.auto.nonlinear.FAMILIES`);
- baselines: a Gaussian blur of sigma 1.25 and the best blur per image over
  sigma 0.5-4 (chosen with the clean image: an oracle, not a method).

Each variant is :func:`napari_mpid.core.auto.combine` on the whole plane
with no network candidate: what the auto preset runs on these images (the
network is skipped on shot noise and on correlated noise; on the ladder crops
the same holds). Seconds are wall time on one thread, noise estimate included.

Sets: ``fmdd`` (FMD test_mix raw, full 512x512; ``--captures``: 1 is the
development subset, 2-4 held out) and ``ladder`` (the 128x128 crops of
benchmarks/ladder.py at raw/avg2/avg4/avg8; ``--captures`` picks them too).

    python benchmarks/mix_nonlinear.py fmdd --captures 1 --json benchmarks/results/mix_nonlinear_fmdd_dev.json
    python benchmarks/mix_nonlinear.py fmdd --captures 2 3 4 --json benchmarks/results/mix_nonlinear_fmdd_heldout.json
    python benchmarks/mix_nonlinear.py fmdd --captures 1 --variants default --nlm-search 7   # sweeps (dev only):
    # also --nlm-patch 1 / 3, --nlm-h 0.3 0.5 0.7 1.0 1.4, --combine-sigmas 0.5 0.75 1 1.5 2 3 4
    python benchmarks/mix_nonlinear.py ladder --captures 1 --variants default --gt-variance

``--gt-variance`` scales each plane's estimated noise-level line to the
variance measured against gt (benchmarks/noise_reference.py's direct
reference: the residual after gt's gain and offset, over ``1 - k / 50`` for
the mean of k captures): what a right noise level would be worth.
``--gt-acf`` replaces the noise model's autocorrelation in the blurs'
slopes (:func:`~napari_mpid.core.auto.risk.blur_slope`, the [s, 1, s]
model reaching two pixels) by the autocorrelation of the residual against
gt over the whole 512x512 capture, to the blurs' full extent: what a right
model of correlated noise would be worth to the blurs (NL-means' Monte-Carlo
divergence keeps the model). ``--gt-acf-radius 2`` keeps the measured
autocorrelation at lags of at most 2 pixels along each axis (a 5x5
window, as the model's) and sets it to 0 beyond. ``--acf-from
blocks|windows|spectrum`` does the same with the 5x5 autocorrelation that
benchmarks/noise_spectrum.py reads from the noisy plane alone, on planes
the estimate takes for correlated noise (lag-1 at least ``CORRELATED``;
the others keep the model). Together with
``--combine-sigmas ... 4 6``:

    python benchmarks/mix_nonlinear.py ladder --captures 1 --variants default --gt-acf --combine-sigmas 0.5 0.75 1 1.5 2 3 4 6

``--repeats`` takes each plane's noise from a noise profile
(:func:`~napari_mpid.core.noise_profile.measure_profile`) of the
configuration's other captures at the plane's level, as a run with
``noise_profile`` does; ``--repeats line`` / ``--repeats acf`` keep the
estimate's autocorrelation model / noise line and take the other half
from the profile. Every row records the noise variance used over the
direct reference against gt (``default variance / gt``)::

    python benchmarks/mix_nonlinear.py ladder --captures 1 --variants default --repeats
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import noise_repeats
import noise_spectrum
import numpy as np
import torch
from _common import (
    FMD_CROP,
    eval_dir,
    gt_residual,
    kernel_slope,
    psnr,
    read_unit,
    residual_autocorrelation,
    scaled_noise,
)

import napari_mpid.core.auto.nonlinear as nonlinear
import napari_mpid.core.auto.risk as auto_risk
from napari_mpid.core.auto import CORRELATED, combine
from napari_mpid.core.filters import convolve_separable, gaussian_kernel
from napari_mpid.core.noise import NoiseEstimate, estimate_noise
from napari_mpid.core.noise_profile import measure_profile

#: Blur widths of the per-image oracle (as the FMDD table of docs/benchmarks.md).
ORACLE = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)
FIXED = 1.25
VARIANTS = {
    "linear": (),
    "+ nlm": ("nlm",),
    "+ nlm prefiltered": ("nlm-prefiltered",),
    "+ bands": ("bands",),
    "no prefiltered nlm": ("nlm", "bands"),
    "default": nonlinear.FAMILIES,
}
LEVELS = ("raw", "avg2", "avg4", "avg8")
#: The shipped slopes (the [s, 1, s] model), restored on planes an ``--acf-from`` run leaves to it.
model_slope = auto_risk.blur_slope


def blur(plane: np.ndarray, sigma: float) -> np.ndarray:
    return convolve_separable(plane, gaussian_kernel(sigma))


def images(kind: str, captures: list[str]) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, tuple]]:
    """(name, noisy, clean, the whole noisy image, the crop) in [0, 1] for the chosen set.

    The baselines blur the whole image and then crop (as benchmarks/ladder.py),
    so that a crop's border is not what separates a blur from the mix.
    """
    out = []
    if kind == "fmdd":
        root = eval_dir("fmd_test_mix")
        configs = sorted({p.name.rsplit("_", 1)[0] for p in (root / "raw").glob("*.png")})
        for capture in captures:
            for config in configs:
                name = f"{config}_{capture}.png"
                noisy = read_unit(root / "raw" / name)
                out.append((name, noisy, read_unit(root / "gt" / name), noisy, (slice(None), slice(None))))
        return out
    root = eval_dir("fmd_test_mix")
    configs = sorted({p.name.rsplit("_", 1)[0] for p in (root / "raw").glob("*.png")})
    for level in LEVELS:
        folder = root / level if (root / level).is_dir() else None
        if folder is None:
            raise SystemExit(f"no {level} folder under {root}: the ladder needs FMD's averaged captures")
        for capture in captures:
            for config in configs:
                name = f"{config}_{capture}.png"
                full = read_unit(folder / name)
                clean = read_unit(root / "gt" / name)[FMD_CROP]
                out.append((f"{level}/{name}", full[FMD_CROP], clean, full, FMD_CROP))
    return out


def gt_variance(noisy: np.ndarray, clean: np.ndarray, name: str) -> float:
    """The plane's noise variance against gt: the direct reference of benchmarks/noise_reference.py.

    The residual after gt's gain and offset, over ``1 - k / 50`` for the
    mean of k captures (avg-k from the name's level; gt holds them).
    """
    level = name.split("/")[0]
    k = int(level[3:]) if level.startswith("avg") else 1
    residual, _ = gt_residual(noisy, clean)
    return float(np.mean(residual**2)) / (1 - k / 50)


def scaled_to_gt(noise: NoiseEstimate, noisy: np.ndarray, clean: np.ndarray, name: str) -> NoiseEstimate:
    """``noise`` with its line scaled to the plane's variance against gt (:func:`gt_variance`)."""
    return scaled_noise(noise, gt_variance(noisy, clean, name) / float(np.mean(noise.variance(noisy))))


def from_repeats(noise: NoiseEstimate, noisy: np.ndarray, name: str) -> NoiseEstimate | None:
    """The plane's noise from a profile (:func:`~napari_mpid.core.noise_profile.measure_profile`) of repeats.

    The repeats are the configuration's other captures at the plane's level
    (whole 512x512 images: the same microscope, settings and field), as
    many as have pairwise independent noise
    (:func:`noise_repeats.independent_frames`). The profile's line and
    autocorrelation replace the estimate's, as a run with ``noise_profile``
    does (:meth:`~napari_mpid.core.noise_profile.NoiseProfile.for_plane`, in
    units of 1/255 as the engine scales 8-bit data). None where fewer than
    two such captures exist.
    """
    level, file = name.split("/") if "/" in name else ("raw", name)
    root = eval_dir("fmd_test_mix")
    config, capture = file[: -len(".png")].rsplit("_", 1)
    others = [f for c, f in noise_repeats.distinct_captures(root / level, config, [1, 2, 3, 4]) if str(c) != capture]
    frames = noise_repeats.independent_frames(others, read_unit(root / "gt" / file))
    if len(frames) < 2:
        return None
    return measure_profile(np.stack(frames)).for_plane(noisy, 0.0, 1.0)


def blurs_reach() -> int:
    """Pixels the widest of the mix's blurs reaches from its centre: the autocorrelation the slopes need."""
    return max(len(gaussian_kernel(s)) // 2 for s in auto_risk.COMBINE_SIGMAS)


def truncated(acf: np.ndarray, reach: int | None) -> np.ndarray:
    """``acf`` with the lags beyond ``reach`` pixels along either axis set to 0 (unchanged for None)."""
    if reach is None:
        return acf
    radius = acf.shape[0] // 2
    lags = np.abs(np.arange(-radius, radius + 1))
    return np.where((lags[:, None] > reach) | (lags[None, :] > reach), 0.0, acf)


def slopes_from(acf: np.ndarray):
    """A stand-in for :func:`~napari_mpid.core.auto.risk.blur_slope` that weighs the kernel by ``acf``."""
    radius = acf.shape[0] // 2

    def slope(sigma: float, correlation: float, autocorrelation: np.ndarray | None = None) -> float:
        if len(gaussian_kernel(sigma)) // 2 > radius:
            raise ValueError(f"sigma {sigma} reaches beyond the autocorrelation's {radius} pixels")
        return kernel_slope(acf, sigma)

    return slope


def read_acf(plane: np.ndarray, how: str) -> np.ndarray:
    """A 5x5 autocorrelation read off ``plane`` alone by one of noise_spectrum.py's readings, padded to the blurs."""
    reading = {
        "blocks": lambda p: noise_spectrum.from_blocks(p, 4),
        "windows": noise_spectrum.from_windows,
        "spectrum": lambda p: noise_spectrum.from_spectrum(p, np.pi / 2),
    }[how](plane)
    radius = blurs_reach()
    acf = np.zeros((2 * radius + 1, 2 * radius + 1))
    for (dy, dx), value in reading.items():
        if abs(dy) <= 2 and abs(dx) <= 2:
            acf[radius + dy, radius + dx] = acf[radius - dy, radius - dx] = value
    return acf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("set", choices=["fmdd", "ladder"])
    parser.add_argument("--captures", nargs="+", default=["1"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--nlm-search", type=int, help="NL-means' search radius (default: the shipped NLM_SEARCH)")
    parser.add_argument("--nlm-patch", type=int, help="NL-means' patch radius (default: the shipped NLM_PATCH)")
    parser.add_argument("--nlm-h", type=float, nargs="+", help="NL-means' strengths (default: the shipped NLM_H)")
    parser.add_argument("--nlm-prefilter", type=float, help="the prefiltered NL-means' blur (default: NLM_PREFILTER)")
    parser.add_argument(
        "--combine-sigmas", type=float, nargs="+", help="the mix's blurs of the plane (default: COMBINE_SIGMAS)"
    )
    parser.add_argument("--gt-variance", action="store_true", help="the noise line scaled to gt's variance")
    parser.add_argument(
        "--gt-acf", action="store_true", help="the blurs' slopes from the noise's autocorrelation measured against gt"
    )
    parser.add_argument("--gt-acf-radius", type=int, help="with --gt-acf: lags beyond this many pixels set to 0")
    parser.add_argument(
        "--acf-from",
        choices=("blocks", "windows", "spectrum"),
        help="the blurs' slopes from a 5x5 autocorrelation read off the noisy plane (noise_spectrum.py)",
    )
    parser.add_argument(
        "--repeats",
        nargs="?",
        const="both",
        choices=("both", "line", "acf"),
        help="the noise line and/or the blurs' slopes from the other captures' differences (noise_repeats.py)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.repeats and (args.acf_from or args.gt_acf or args.gt_variance):
        parser.error("--repeats is a noise model of its own: give it without --gt-* or --acf-from")
    if args.acf_from and args.gt_acf:
        parser.error("--acf-from and --gt-acf are two sources of one autocorrelation: give one")
    torch.set_num_threads(1)
    # A sweep of NL-means' extent on the development subset: the module constants, set for this run.
    if args.nlm_search is not None:
        nonlinear.NLM_SEARCH = args.nlm_search
    if args.nlm_patch is not None:
        nonlinear.NLM_PATCH = args.nlm_patch
    if args.nlm_h:
        # candidates() calls nl_means with its default strengths: the default is what changes.
        nonlinear.NLM_H = tuple(args.nlm_h)
        nonlinear.nl_means.__defaults__ = (nonlinear.NLM_H, 0.0)
    if args.nlm_prefilter is not None:
        nonlinear.NLM_PREFILTER = args.nlm_prefilter
    if args.combine_sigmas:
        auto_risk.COMBINE_SIGMAS = tuple(args.combine_sigmas)
    rows = []
    for name, noisy, clean, full, crop in images(args.set, args.captures):
        row: dict = {"image": name, f"blur {FIXED:g}": psnr(blur(full, FIXED)[crop], clean)}
        row["oracle blur"] = max(psnr(blur(full, s)[crop], clean) for s in ORACLE)
        # No network candidate: the held-out pixels (4 %, as the engine holds out) decide nothing here.
        held = np.random.default_rng(0).random(noisy.shape) < 0.04
        if args.gt_acf:
            # The whole capture's residual: 16x the pixels of a crop, the same camera noise.
            full_clean = read_unit(eval_dir("fmd_test_mix") / "gt" / name.split("/")[-1])
            acf = residual_autocorrelation(gt_residual(full, full_clean)[0], blurs_reach())
            auto_risk.blur_slope = slopes_from(truncated(acf, args.gt_acf_radius))
        if args.acf_from:
            auto_risk.blur_slope = model_slope
            if estimate_noise(noisy).correlation >= CORRELATED:
                auto_risk.blur_slope = slopes_from(read_acf(noisy, args.acf_from))
        for variant in args.variants:
            start = time.perf_counter()
            noise = estimate_noise(noisy)
            if args.gt_variance:
                noise = scaled_to_gt(noise, noisy, clean, name)
            if args.repeats:
                profiled = from_repeats(noise, noisy, name)
                row["calibrated"] = profiled is not None
                if profiled is not None and args.repeats == "line":
                    noise = dataclasses.replace(profiled, correlation=noise.correlation, autocorrelation=None)
                elif profiled is not None and args.repeats == "acf":
                    noise = dataclasses.replace(noise, autocorrelation=profiled.autocorrelation)
                elif profiled is not None:
                    noise = profiled
            row[f"{variant} variance / gt"] = round(
                float(np.mean(noise.variance(noisy))) / gt_variance(noisy, clean, name), 3
            )
            mixed, how = combine(noisy[None], {}, held, noise, nonlinear=VARIANTS[variant])
            row[f"{variant} seconds"] = round(time.perf_counter() - start, 3)
            row[variant] = psnr(mixed[0], clean)
            row[f"{variant} shares"] = {k: round(v, 3) for k, v in how.shares().items() if v}
        rows.append(row)
        shown = "  ".join(f"{v} {row[v]:6.2f} ({row[f'{v} seconds']:.2f} s)" for v in args.variants)
        print(f"{name:36s} blur {row[f'blur {FIXED:g}']:6.2f} oracle {row['oracle blur']:6.2f}  {shown}", flush=True)
    keys = [f"blur {FIXED:g}", "oracle blur", *args.variants, *(f"{v} seconds" for v in args.variants)]
    groups = {"all": rows}
    if args.set == "ladder":
        groups.update({level: [r for r in rows if r["image"].startswith(level + "/")] for level in LEVELS})
    summary = {g: {k: round(float(np.mean([r[k] for r in rs])), 3) for k in keys} for g, rs in groups.items() if rs}
    for variant in args.variants:
        gains = np.array([r[variant] - r["linear"] for r in rows]) if "linear" in args.variants else None
        if gains is not None and variant != "linear":
            summary["all"][f"gain of {variant} over linear"] = {
                "mean": round(float(gains.mean()), 3),
                "min": round(float(gains.min()), 3),
                "max": round(float(gains.max()), 3),
            }
    below = [r["image"] for r in rows if "default" in r and r["default"] < r["oracle blur"] - 0.3]
    summary["all"]["more than 0.3 dB below the oracle blur (default)"] = below
    for group, rs in groups.items():
        if rs and "default" in args.variants:
            ratios = [r["default variance / gt"] for r in rs]
            summary[group]["noise variance / gt (default)"] = {
                "min": min(ratios),
                "max": max(ratios),
                "outside 15 %": sum(abs(v - 1) > 0.15 for v in ratios),
            }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "what": f"auto mix with and without non-linear candidates, {args.set}, captures {args.captures}",
            "gt variance": args.gt_variance,
            "gt acf": args.gt_acf,
            "gt acf radius": args.gt_acf_radius,
            "repeats": args.repeats,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.processor() or platform.machine()}, 1 torch thread, shared 2-core CPU",
            "command": "python benchmarks/mix_nonlinear.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "nlm": {
                "search": nonlinear.NLM_SEARCH,
                "patch": nonlinear.NLM_PATCH,
                "h": list(nonlinear.NLM_H),
                "prefilter": nonlinear.NLM_PREFILTER,
            },
            "combine sigmas": list(auto_risk.COMBINE_SIGMAS),
            "summary": summary,
            "rows": rows,
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
