"""Replay the final mix of the auto preset on its own inputs, with variants (issue 10 and 12 diagnostics).

Runs the auto preset as the CLI does, keeps what it hands to
:func:`~napari_mpid.core.auto.combine` for every plane, and scores against
the clean reference:

- ``auto``: the result as shipped;
- ``filling``: the filling (or context prediction) alone;
- ``stage 1``: the all-pixel mix alone (:func:`~napari_mpid.core.auto.plane_mix`);
- ``true variance``: ``combine`` with the noise level scaled to the true
  noise variance (from the clean reference), everything else unchanged;
- ``variance ratio``: estimated / true noise variance.

Datasets: ``ladder`` (FMD test_mix 12 first captures, raw/avg2/avg4/avg8,
centre 128x128 crops at (192, 192), as benchmarks/ladder.py; also the
per-image oracle blur computed on the full image and on the crop alone),
``cset9`` (sigma 25, 128x128 crops, pixel-independent model, as
benchmarks/eval_quality.py) and ``pollen`` (the Z-stack, context filling;
also how much of the noise variance the clean planes alone leave in the
patch spectrum of :func:`~napari_mpid.core.noise.patch_noise_variance`).
For the ladder's avg-k levels the "true" variance is the raw capture's
against gt divided by k (gt shares the averaged captures' noise).

Not a test; one job per core::

    python benchmarks/replay_combine.py ladder --levels raw avg2 --json bench_out/replay_ladder_a.json
    python benchmarks/replay_combine.py pollen --json bench_out/replay_pollen.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import tifffile
import torch
from _common import FMD_CROP, ORACLE_SIGMAS, eval_dir, fmd_first_captures, psnr, read_gray, read_unit, run_to_end
from eval_quality import load_cset9
from scipy.ndimage import gaussian_filter

import napari_mpid.core.engine as engine
import napari_mpid.core.engine.modes as modes
import napari_mpid.core.engine.parts as parts
from napari_mpid.api import load_model
from napari_mpid.core.auto import combine, plane_mix
from napari_mpid.core.noise import NoiseEstimate, patch_noise_variance
from napari_mpid.core.params import preset

CROP = FMD_CROP


def captured(gen) -> list[tuple]:
    """Run the (not yet started) engine generator ``gen`` with :func:`combine` intercepted; its inputs per plane."""
    calls = []

    def spy(noisy, candidates, held, noise, **kw):
        calls.append((noisy.copy(), {k: (v[0].copy(), v[1]) for k, v in candidates.items()}, held.copy(), noise,
                      {k: v.copy() for k, v in (kw.get("independent") or {}).items()}))  # fmt: skip
        return combine(noisy, candidates, held, noise, **kw)

    # The engine's modules call combine by the name they imported.
    parts.combine = modes.combine = spy
    try:
        run_to_end(gen)
    finally:
        parts.combine = modes.combine = combine
    return calls


def scaled(noise: NoiseEstimate, variance: float, plane: np.ndarray) -> NoiseEstimate:
    factor = variance / float(np.mean(noise.variance(plane)))
    return replace(noise, gain=noise.gain * factor, offset=noise.offset * factor, floor=noise.floor * factor)


def variants(call: tuple, clean: np.ndarray, true_variance: float, to01=lambda a: a) -> dict[str, float]:
    """Scores of the shipped mix and its variants for one plane; ``clean`` in the units of ``to01``'s output."""
    noisy, candidates, held, noise, independent = call
    estimated = float(np.mean(noise.variance(noisy)))
    shipped, _ = combine(noisy, candidates, held, noise, independent=independent)
    truth, _ = combine(noisy, candidates, held, scaled(noise, true_variance, noisy), independent=independent)
    first, _, _ = plane_mix(noisy, noise, estimated, independent)
    filling = next(iter(candidates.values()))[0]
    return {
        "auto": psnr(to01(shipped), clean),
        "filling": psnr(to01(filling), clean),
        "stage 1": psnr(to01(first), clean),
        "true variance": psnr(to01(truth), clean),
        "variance ratio": estimated / true_variance,
    }


def ladder(levels: list[str], model) -> list[dict]:
    root = eval_dir("fmd_test_mix")
    rows = []
    for level in levels:
        k = 1 if level == "raw" else int(level.removeprefix("avg"))
        for name in fmd_first_captures():
            full, gt = read_gray(root / level / name), read_unit(root / "gt" / name)
            crop = np.ascontiguousarray(full[CROP])  # uint8 in, as the ladder
            params = preset("auto", model="real-noise", device="cpu")
            (call,) = captured(engine.denoise_planes(crop, params, model=model, noise_map=False))
            true_variance = float(np.mean((read_unit(root / "raw" / name)[CROP] - gt[CROP]) ** 2)) / k
            row = {"level": level, "image": name, **variants(call, gt[CROP][None], true_variance)}
            row["oracle blur"] = max(psnr(gaussian_filter(full / 255.0, s)[CROP], gt[CROP]) for s in ORACLE_SIGMAS)
            row["oracle blur on the crop"] = max(psnr(gaussian_filter(crop / 255.0, s, mode="reflect"), gt[CROP])
                                                 for s in ORACLE_SIGMAS)  # fmt: skip
            rows.append(row)
            print(level, name, {k: round(v, 2) for k, v in row.items() if isinstance(v, float)}, flush=True)
    return rows


def cset9(model) -> list[dict]:
    rows = []
    params = preset("auto", model="pixel-independent", device="cpu", precision="bfloat16", normalization="none")
    for name, noisy, clean in load_cset9(128, 25.0):
        torch.manual_seed(0)
        (call,) = captured(engine.denoise_planes(noisy, params, model=model, axes="YXS"))
        c = clean.transpose(2, 0, 1)
        row = {"image": name, **variants(call, c, float(np.mean((call[0] - c) ** 2)))}
        rows.append(row)
        print(name, {k: round(v, 2) for k, v in row.items() if isinstance(v, float)}, flush=True)
    return rows


def pollen(model) -> list[dict]:
    noisy = tifffile.imread(eval_dir("zstacks", "pollen_noisy.tif"))
    clean = tifffile.imread(eval_dir("zstacks", "pollen_clean.tif")).astype(np.float64)
    params = preset("auto", model="real-noise", device="cpu")
    calls = captured(engine.denoise_planes(noisy, params, model=model, axes="ZYX", noise_map=False))
    rows = []
    for z, call in enumerate(calls):
        # The engine scales the plane linearly to [0, 1]; map its units back to the data's.
        a, b = np.polyfit(call[0].ravel(), noisy[z].astype(np.float64).ravel(), 1)
        reference = (clean[z][None] - b) / a
        true_variance = float(np.mean((call[0] - reference) ** 2))
        row = {"plane": z, **variants(call, clean[z][None], true_variance, to01=lambda u, a=a, b=b: a * u + b)}
        row["clean share of the patch spectrum"] = patch_noise_variance(clean[z]) / (
            float(np.mean(clean[z] / 20 + 0.02**2))  # the recipe of ../shared/DATA.md
        )
        rows.append(row)
        print(z, {k: round(v, 2) for k, v in row.items() if isinstance(v, float)}, flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=("ladder", "cset9", "pollen"))
    parser.add_argument("--levels", nargs="+", default=["raw", "avg2", "avg4", "avg8"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("pixel-independent" if args.dataset == "cset9" else "real-noise", "cpu")
    rows = ladder(args.levels, model) if args.dataset == "ladder" else cset9(model) if args.dataset == "cset9" else pollen(model)  # fmt: skip
    groups = sorted({r.get("level", args.dataset) for r in rows})
    summary = {}
    for group in groups:
        items = [r for r in rows if r.get("level", args.dataset) == group]
        keys = [k for k, v in items[0].items() if isinstance(v, float)]
        summary[group] = {k: float(np.mean([r[k] for r in items])) for k in keys}
        print(group, {k: round(v, 2) for k, v in summary[group].items()})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"dataset": args.dataset, "summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
