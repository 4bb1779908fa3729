"""Stack-aware denoising benchmark (issue 10): FMD frame series and synthetic Z-stacks, with baselines.

Not a test: a measurement to run by hand and record in docs/benchmarks.md.

Datasets (from ../shared/data/eval, never copied):

static
    For each of the 12 FMD configurations, captures _1.._4 as a TYX series;
    centre crop [128:384, 128:384] of every frame; every frame scored against
    the configuration's gt crop (PSNR, data range 1, /255, clip to [0, 1]);
    mean over 48 frames.
drift
    As static, but frame k of the full 512x512 capture is shifted by
    (1.5k, 1.0k) px (scipy.ndimage.shift, order 3, mode 'reflect') before
    cropping, and scored against gt shifted the same way.
unrelated
    Frame 0 = capture 1 of configuration i, frames 1-3 = capture 1 of
    configurations i+1..i+3 (mod 12); only frame 0 is scored.
neuron, pollen
    zstacks/<name>_noisy.tif against <name>_clean.tif, every plane scored
    (mean over planes).
synthetic
    A Z-stack that is not in ../shared: :func:`napari_mpid.synthetic.fluorescence_stack`
    (16 planes of 256x256, 30 photons at the brightest structures, read
    noise 3 counts, seed 7), divided by its clean maximum; every plane
    scored.

Every run also scores the trivial baselines on the same inputs: a 2-D
Gaussian blur of each frame (fixed sigmas), the mean of the series plus a
blur, and a 3-D Gaussian blur; on the FMD series (static, drift) also the
registered mean plus a blur: every other frame moved onto the scored one
by the shift our registration measures on the noisy frames
(:func:`napari_mpid.core.auto.registration.estimate_shift`), averaged
with it, then blurred.

Examples::

    python benchmarks/stacks.py static --json bench_out/static_ctx1.json
    python benchmarks/stacks.py pollen --context 0 --preset cpu --json bench_out/pollen_plane.json
    python benchmarks/stacks.py static --baselines-only
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import tifffile
import torch
from _common import ORACLE_SIGMAS, eval_dir, psnr, psnr_gain_matched, read_gray, run_to_end
from scipy.ndimage import gaussian_filter, shift

import napari_mpid.core.auto.risk as auto_risk
from napari_mpid import __version__
from napari_mpid.core.auto.registration import estimate_shift, shift_plane
from napari_mpid.core.engine import denoise_planes
from napari_mpid.core.engine import modes as engine
from napari_mpid.core.params import PRESETS, preset
from napari_mpid.synthetic import fluorescence_stack

#: Blur widths of the baselines.
SIGMAS = ORACLE_SIGMAS


def fmd_configs() -> list[str]:
    """The 12 configurations of FMD test_mix (file names without ``_<capture>.png``), sorted."""
    return sorted({p.name.rsplit("_", 1)[0] for p in (eval_dir("fmd_test_mix") / "raw").glob("*_1.png")})


def load(dataset: str, limit: int | None = None, every: int = 1) -> list[dict]:
    """Series of the dataset: dicts with name, noisy (N, H, W), clean (N, H, W) in [0, 1], scored frame indices.

    ``every``: Z-stacks only, score every ``every``-th plane from ``every // 2`` on
    (plane-by-plane filling then fills only those: a cheaper, sampled figure).
    """
    crop = (slice(128, 384), slice(128, 384))
    items = []
    if dataset in ("static", "drift", "unrelated"):
        root = eval_dir("fmd_test_mix")
        configs = fmd_configs()
        for i, cfg in enumerate(configs[:limit] if limit else configs):
            gt = read_gray(root / "gt" / f"{cfg}_1.png").astype(np.float64)
            if dataset == "unrelated":
                names = [configs[(i + k) % len(configs)] for k in range(4)]
                frames = [read_gray(root / "raw" / f"{n}_1.png") for n in names]
                noisy = np.stack([f[crop] for f in frames])
                clean = np.stack([read_gray(root / "gt" / f"{n}_1.png")[crop] for n in names]) / 255.0
                items.append({"name": cfg, "noisy": noisy, "clean": clean, "scored": [0], "series": False})
                continue
            frames, truths = [], []
            for k in range(4):
                raw = read_gray(root / "raw" / f"{cfg}_{k + 1}.png")
                if dataset == "drift":
                    raw = np.clip(
                        np.rint(shift(raw.astype(np.float64), (1.5 * k, 1.0 * k), order=3, mode="reflect")), 0, 255
                    )
                    truth = shift(gt, (1.5 * k, 1.0 * k), order=3, mode="reflect")
                else:
                    truth = gt
                frames.append(raw.astype(np.uint8)[crop])
                truths.append(truth[crop] / 255.0)
            items.append(
                {
                    "name": cfg,
                    "noisy": np.stack(frames),
                    "clean": np.stack(truths),
                    "scored": [0, 1, 2, 3],
                    "series": True,
                }
            )
    elif dataset == "synthetic":
        # Not from ../shared: the package's own rendering of beads and filaments under shot and
        # read noise (napari_mpid.synthetic), 16 planes of 256x256, in [0, 1] by the clean maximum.
        counts, expected = fluorescence_stack(planes=16, size=256, photons=30.0, seed=7)
        scale = float(expected.max())
        noisy = (counts.astype(np.float64) / scale).astype(np.float32)
        items.append(
            {"name": dataset, "noisy": noisy, "clean": expected / scale, "scored": list(range(16)), "series": False}
        )
    else:
        noisy = tifffile.imread(eval_dir("zstacks", f"{dataset}_noisy.tif"))
        clean = tifffile.imread(eval_dir("zstacks", f"{dataset}_clean.tif")).astype(np.float64)
        scored = list(range(every // 2, len(noisy), every)) if every > 1 else list(range(len(noisy)))
        items.append({"name": dataset, "noisy": noisy, "clean": clean, "scored": scored, "series": False})
    return items


def to_unit(item: dict, stack: np.ndarray) -> np.ndarray:
    """Denoised stack in input units -> [0, 1] as scored (FMD: /255)."""
    return stack / 255.0 if item["noisy"].dtype == np.uint8 else stack


def scores(item: dict, estimate: np.ndarray, metric=None) -> list[float]:
    metric = metric or psnr
    return [metric(estimate[k], item["clean"][k]) for k in item["scored"]]


def registered_means(noisy: np.ndarray) -> np.ndarray:
    """Per frame of a ``(T, H, W)`` series, the mean of all frames moved onto it (shifts measured on the noisy frames)."""
    out = np.empty_like(noisy)
    for k in range(len(noisy)):
        moved = [noisy[k]] + [
            shift_plane(noisy[j], estimate_shift(noisy[k], noisy[j])) for j in range(len(noisy)) if j != k
        ]
        out[k] = np.mean(moved, axis=0)
    return out


def baselines(item: dict) -> dict[str, list[float]]:
    noisy = to_unit(item, item["noisy"].astype(np.float64))
    out = {"noisy": scores(item, noisy)}
    registered = registered_means(noisy) if item["series"] else None
    for s in SIGMAS:
        mean = np.broadcast_to(noisy.mean(axis=0), noisy.shape)
        estimates = [
            (f"blur2d_{s}", gaussian_filter(noisy, (0, s, s))),
            (f"mean+blur_{s}", gaussian_filter(mean, (0, s, s))),
            (f"blur3d_{s}", gaussian_filter(noisy, s, mode="reflect")),
        ]
        if registered is not None:
            estimates.append((f"regmean+blur_{s}", gaussian_filter(registered, (0, s, s))))
        for name, estimate in estimates:
            out[name] = scores(item, estimate)
            out[name + " (gain-matched)"] = scores(item, estimate, psnr_gain_matched)
    return out


def run_method(item: dict, params, model) -> tuple[list[float], float, dict]:
    axes = "TYX" if item["noisy"].dtype == np.uint8 else "ZYX"
    start = time.perf_counter()
    # Plane by plane (context 0) the frames are independent: fill only the scored ones.
    only = item["scored"] if params.context == 0 and not params.static_scene else None
    result = run_to_end(denoise_planes(item["noisy"], params, axes=axes, model=model, noise_map=False, planes=only))
    seconds = time.perf_counter() - start
    meta = {
        k: v for k, v in result.metadata().items() if k.startswith("param_") or k in ("notes", "summary", "produced_by")
    }
    meta["auto_choices"] = [{k: v for k, v in c.items() if k != "fusion_weights"} for c in result.choices]
    # Does the fitted network use the neighbours? Norm of the first layers' weights on the
    # neighbour channels relative to those on the plane and its mask (0 at the start).
    ratios = []
    for state in result.fitted.values():
        for name in ("encoder_decoder.skip.conv.weight", "encoder_decoder.down1.conv.weight"):
            w = state[name].float()
            own = 2 if w.shape[1] % 2 == 0 else 1  # plane + mask channels of the 1-channel model
            ratios.append(float(w[:, own:].norm() / w[:, :own].norm()))
    meta["neighbour_weight_ratio"] = float(np.mean(ratios)) if ratios else None
    estimate = to_unit(item, result.denoised)
    return scores(item, estimate), scores(item, estimate, psnr_gain_matched), seconds, meta


def known_camera_profile(dataset: str) -> Path:
    """A noise profile of the Z-stacks' synthetic camera, measured as a user would, saved to a temporary file.

    ../shared/DATA.md gives the camera: Poisson(clean x 20) / 20 + Gaussian
    sigma 0.02. Four exposures of the stack's middle clean plane under it
    (seed 2027, not the stack's own noise) go to
    :func:`~napari_mpid.core.noise_profile.measure_profile`: what calibrating
    that camera on a fixed sample would give.
    """
    import tempfile

    from napari_mpid.core.noise_profile import measure_profile

    clean = tifffile.imread(eval_dir("zstacks", f"{dataset}_clean.tif")).astype(np.float64)
    plane = clean[len(clean) // 2]
    rng = np.random.default_rng(2027)
    frames = np.stack([rng.poisson(plane * 20) / 20 + rng.normal(0.0, 0.02, plane.shape) for _ in range(4)])
    path = Path(tempfile.mkdtemp()) / f"{dataset}_camera.json"
    measure_profile(frames.astype(np.float32)).save(path)
    return path


def summarize(per_item: list[dict], key: str) -> float:
    values = [v for item in per_item for v in item[key]]
    return float(np.mean(values))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=("static", "drift", "unrelated", "neuron", "pollen", "synthetic"))
    parser.add_argument("--preset", choices=tuple(PRESETS), default="fast")
    parser.add_argument("--model", default="real-noise")
    parser.add_argument("--context", type=int, help="default: automatic")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--network", choices=("auto", "always", "never"), help="auto preset: when the network runs")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--beta", type=float)
    parser.add_argument("--mask-ratio", type=float)
    parser.add_argument("--passes", type=int, help="context filling: masks per plane at prediction")
    parser.add_argument("--crop", type=int, help="context filling: training crop side")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="first N FMD configurations only")
    parser.add_argument("--every", type=int, default=1, help="Z-stacks: score every Nth plane only")
    parser.add_argument("--static-scene", action="store_true", help="FMD series: average the frames, denoise the mean")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baselines-only", action="store_true")
    parser.add_argument("--label", help="name of this method in the results")
    parser.add_argument(
        "--linear-mix",
        action="store_true",
        help="ablation: the auto preset's mix without its non-linear candidates (NL-means, shrunk bands)",
    )
    parser.add_argument(
        "--no-denoised-mean",
        action="store_true",
        help="ablation: the neighbour means without the denoised mean of the other planes (auto.mean_denoiser)",
    )
    parser.add_argument(
        "--mean-families",
        nargs="*",
        help="ablation: the non-linear families of the denoised mean's mix (default: the mix's own)",
    )
    parser.add_argument(
        "--known-camera",
        action="store_true",
        help="neuron, pollen: the noise from a profile of the stacks' own synthetic camera (noise_profile)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.known_camera and args.dataset not in ("neuron", "pollen"):
        parser.error("--known-camera: only the Z-stacks (neuron, pollen) have a known camera")
    torch.set_num_threads(args.threads)
    if args.linear_mix:
        auto_risk.nonlinear_candidates = lambda *_, **__: {}
    if args.no_denoised_mean:
        engine.mean_denoiser = lambda noise: None
    if args.mean_families is not None:
        engine.mean_denoiser = functools.partial(auto_risk.mean_denoiser, families=tuple(args.mean_families))
    if args.passes:
        engine.CONTEXT_PASSES = args.passes
    if args.crop:
        engine.CONTEXT_CROP = args.crop

    changes = {"model": args.model, "device": args.device, "precision": args.precision, "seed": args.seed}
    for name, value in (
        ("context", args.context),
        ("iterations", args.iterations),
        ("learning_rate", args.lr),
        ("beta", args.beta),
        ("mask_ratio", args.mask_ratio),
        ("network", args.network),
    ):
        if value is not None:
            changes[name] = value
    if args.static_scene:
        changes["static_scene"] = True
    if args.known_camera:
        changes["noise_profile"] = str(known_camera_profile(args.dataset))
    params = preset(args.preset, **changes)
    model = None
    if not args.baselines_only:
        from napari_mpid.api import load_model

        model = load_model(params.model, params.device)
    label = args.label or (
        f"static scene, {args.preset}"
        if args.static_scene
        else f"context {args.context if args.context is not None else 'auto'}, {args.preset}"
    )
    if args.every > 1 and not args.label:
        label += f", every {args.every}th plane"
    if args.linear_mix and not args.label:
        label += ", linear mix"
    if args.no_denoised_mean and not args.label:
        label += ", no denoised mean"
    if args.known_camera and not args.label:
        label += ", known camera's profile"
    if args.mean_families is not None and not args.label:
        label += f", denoised mean with {'+'.join(args.mean_families) or 'blurs only'}"

    per_item = []
    for item in load(args.dataset, args.limit, args.every):
        record = {"name": item["name"], **baselines(item)}
        if not args.baselines_only:
            record[label], record[label + " (gain-matched)"], record["seconds"], record["meta"] = run_method(
                item, params, model
            )
            print(f"{item['name']:24s} {label}: {np.mean(record[label]):.2f} ({record['seconds']:.0f} s)", flush=True)
        per_item.append(record)

    keys = [k for k in per_item[0] if isinstance(per_item[0][k], list)]
    means = {k: summarize(per_item, k) for k in keys}
    best = {
        kind + tag: max(
            ((k, v) for k, v in means.items() if k.startswith(kind) and k.endswith("(gain-matched)") == bool(tag)),
            key=lambda kv: kv[1],
        )
        for kind in ("blur2d", "mean+blur", "blur3d", "regmean+blur")
        for tag in ("", " (gain-matched)")
        if any(k.startswith(kind) for k in means)
    }
    for kind, (k, v) in best.items():
        print(f"best {kind}: {k} {v:.2f}")
    if not args.baselines_only:
        seconds = float(np.sum([r["seconds"] for r in per_item]))
        print(
            f"{label}: {means[label]:.2f} dB (gain-matched {means[label + ' (gain-matched)']:.2f}), {seconds:.0f} s in all"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "dataset": args.dataset,
                    "label": label,
                    "params": None if args.baselines_only else params.to_dict(),
                    "passes": engine.CONTEXT_PASSES,
                    "crop": engine.CONTEXT_CROP,
                    "device": f"{args.device} ({platform.machine()}, {args.threads} threads)",
                    "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "version": __version__,
                    "means": means,
                    "best_baselines": {k: {"name": n, "psnr": v} for k, (n, v) in best.items()},
                    "items": per_item,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
