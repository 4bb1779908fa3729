"""How much the all-pixel mix of the auto preset leaves on the table, and which weight rules hold up.

Stage 1 of :func:`~napari_mpid.core.auto.combine` mixes the noisy plane, its
Gaussian blurs and (for stacks) means of other planes by Stein's unbiased
risk estimate (SURE). This script compares, on the same inputs and with the
same noise estimate and candidates (neighbours of context 1, and all other
frames of FMD's 4-frame series, as the engine makes them: copies of the
plane left out of the means, registered means of drifting neighbours
added; means that still match the plane too closely, and their blurs, left
out as ``combine`` does):

- ``shipped``: :func:`~napari_mpid.core.auto.plane_mix` as it is;
- ``global``: one non-negative weight per candidate for the whole plane
  (the rule before intensity-dependent weights);
- ``signed``: the unconstrained SURE minimiser (weights of any sign: sums
  of blurs with alternating signs make sharper low-pass filters);
- ``ridge``: the unconstrained minimiser with a ridge of 1e-3 of the
  Gram matrix's diagonal;
- ``all varying``: every weight a linear function of the local intensity
  (the sigma-2 blur), ``w_k = a_k + b_k * p`` (``a_k >= 0``), chosen by the
  heteroscedastic SURE (per-pixel noise variance from the noise-level
  line, scaled to the plane's level; the divergence of the ``p *
  candidate`` terms includes the blur's own centre weight), for planes
  whose noise is taken as white; the shipped rule lets only the terms of
  :data:`~napari_mpid.core.auto.VARYING` vary;
- ``oracle``: the least-squares fit of the global family to the clean
  plane (an upper bound for its weights, Z-stacks only);
- ``shipped, copies kept``: the shipped rule with duplicated frames kept
  in the neighbour means (the engine leaves them out, see
  :meth:`~napari_mpid.core.fill.context.PlaneCache.twin`);
- ``shipped, not registered``: without the registered means of drifting
  neighbours (:data:`~napari_mpid.core.auto.REGISTER_MIN`).

The network plays no part (stage 1 does not use it), so this runs in a few
minutes. Data and scoring as benchmarks/stacks.py (neuron, pollen, static,
drift, unrelated) and benchmarks/ladder.py (FMD 128x128 crops, raw/avg2/
avg4/avg8, score relative to the per-image oracle blur over sigma 0.5-2).

    python benchmarks/mix_family.py --json benchmarks/results/mix_family.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from _common import FMD_CROP, ORACLE_SIGMAS, eval_dir, fmd_first_captures, psnr, read_unit
from scipy.ndimage import gaussian_filter
from stacks import load

import napari_mpid.core.auto.neighbours as auto_neighbours
import napari_mpid.core.auto.risk as auto_risk
from napari_mpid.core.auto import COMBINE_SIGMAS, blur_slope, neighbour_candidates, plane_mix
from napari_mpid.core.auto.risk import NOT_INDEPENDENT, _nonnegative_quadratic
from napari_mpid.core.filters import convolve_separable, gaussian_kernel
from napari_mpid.core.noise import estimate_noise
from napari_mpid.core.run.stack import PlaneCache

CROP = FMD_CROP
RIDGE = 1e-3


def mixes(
    noisy: np.ndarray, others: dict[str, np.ndarray], clean: np.ndarray | None, rules: bool = True
) -> dict[str, np.ndarray]:
    """The stage-1 mix of one plane ``(H, W)`` in [0, 1] with each weight rule (``rules=False``: shipped only)."""
    noise = estimate_noise(noisy)
    level = float(np.mean(noise.variance(noisy)))
    rejected = [k for k, c in others.items() if float(np.mean((c - noisy) ** 2)) < NOT_INDEPENDENT * level]
    others = {k: c for k, c in others.items() if not any(k == r or k.startswith(f"{r}, ") for r in rejected)}
    variance = min([level, *(float(np.mean((c - noisy) ** 2)) for c in others.values())])
    stacked = {k: c[None] for k, c in others.items()}
    if not rules:
        return {"shipped": plane_mix(noisy[None], noise, variance, stacked)[0][0]}
    rho = max(noise.correlation, 0.0)
    columns = [noisy] + [convolve_separable(noisy, gaussian_kernel(s)) for s in COMBINE_SIGMAS] + list(others.values())
    slopes = np.array([1.0, *(blur_slope(s, rho) for s in COMBINE_SIGMAS), *([0.0] * len(others)), 0.0])
    x = noisy.ravel()
    design = np.stack([c.ravel() for c in columns] + [np.ones(x.size)], axis=1)
    gram, linear = design.T @ design / x.size, design.T @ x / x.size - variance * slopes
    ridge = RIDGE * np.diag(np.diag(gram)) * np.r_[np.ones(len(columns)), 0.0]
    weights = {
        "global": _nonnegative_quadratic(gram, linear, free=len(columns)),
        "signed": np.linalg.lstsq(gram, linear, rcond=None)[0],
        "ridge": np.linalg.solve(gram + ridge, linear),
    }
    if clean is not None:
        weights["oracle"] = np.linalg.lstsq(design, clean.ravel(), rcond=None)[0]
    out = {"shipped": plane_mix(noisy[None], noise, variance, stacked)[0][0]}
    out.update({k: (design @ w).reshape(noisy.shape) for k, w in weights.items()})
    # Every term follows the intensity: plane_mix with all its candidates' names in VARYING.
    saved, auto_risk.VARYING = auto_risk.VARYING, ("noisy", *(f"blur {s:g}" for s in COMBINE_SIGMAS), *others)
    try:
        out["all varying"] = plane_mix(noisy[None], noise, variance, stacked)[0][0]
    finally:
        auto_risk.VARYING = saved
    return out


def stacks(dataset: str) -> dict[str, float]:
    scores: dict[str, list[float]] = {}
    for item in load(dataset):
        noisy = item["noisy"].astype(np.float64)
        scale = 255.0 if item["noisy"].dtype == np.uint8 else 1.0
        planes = noisy / scale
        # The engine's test for duplicated frames, on the same planes.
        cache = PlaneCache(
            lambda k, planes=planes: torch.from_numpy(planes[k][None, None].astype(np.float32)),
            len(planes),
            torch.device("cpu"),
            2**31,
        )
        zstack = dataset in ("neuron", "pollen")
        for j in item["scored"]:
            clean = item["clean"][j]
            for k, m in mixes(planes[j], _others(planes, j, cache.twin, True), clean if zstack else None).items():
                scores.setdefault(k, []).append(psnr(m, clean))
            for label, twin, register in (("copies kept", None, True), ("not registered", cache.twin, False)):
                m = mixes(planes[j], _others(planes, j, twin, register), None, rules=False)["shipped"]
                scores.setdefault(f"shipped, {label}", []).append(psnr(m, clean))
    found = {k: float(np.mean(v)) for k, v in scores.items()}
    print(dataset, {k: round(v, 2) for k, v in found.items()}, flush=True)
    return found


def _others(planes: np.ndarray, j: int, twin, register: bool) -> dict[str, np.ndarray]:
    """:func:`neighbour_candidates` of plane j (context 1), with or without the copies' test and registration."""
    saved = auto_neighbours.REGISTER_MIN
    auto_neighbours.REGISTER_MIN = saved if register else np.inf
    try:
        found = neighbour_candidates(lambda i: planes[i][None], len(planes), j, 1, twin)
    finally:
        auto_neighbours.REGISTER_MIN = saved
    return {k: c[0] for k, c in found.items()}


def ladder(level: str) -> dict[str, float]:
    root = eval_dir("fmd_test_mix")
    rows: dict[str, list[float]] = {}
    oracles = []
    for name in fmd_first_captures():
        full = read_unit(root / level / name)
        gt = read_unit(root / "gt" / name)[CROP]
        oracle = max(psnr(gaussian_filter(full, s)[CROP], gt) for s in ORACLE_SIGMAS)
        oracles.append(oracle)
        for k, m in mixes(full[CROP], {}, None).items():
            rows.setdefault(k, []).append(psnr(m, gt) - oracle)
    found = {"oracle blur": float(np.mean(oracles))}
    for k, v in rows.items():
        found[k] = float(np.mean(oracles) + np.mean(v))
        found[k + ", worst vs oracle blur"] = float(np.min(v))
    print(level, {k: round(v, 2) for k, v in found.items()}, flush=True)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out = {d: stacks(d) for d in ("neuron", "pollen", "static", "drift", "unrelated")}
    out.update({f"ladder {level}": ladder(level) for level in ("raw", "avg2", "avg4", "avg8")})
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
