"""What the open targets of issues 10 and 12 measure: the method, or the references.

Two questions, answered without the network (stage 1 of the auto preset,
:func:`~napari_mpid.core.auto.plane_mix`, is what decides these planes):

**Static series (issue 10).** FMD's 4 captures of a field differ in
brightness by up to 15 % (a gain of each frame against gt). A per-frame
denoiser keeps each frame's brightness; frame averaging does not. On the
"static" protocol of benchmarks/stacks.py this script scores

- ``flicker only``: the frame's gain times gt (a perfect denoiser that keeps
  the frame's brightness), against gt;
- ``common``: the mean of the 4 frames, mixed by SURE (``plane_mix`` with the
  mean's own noise estimate), the same image for every frame;
- ``common x frame gain``: that image scaled to each frame's own brightness
  (the gain fitted on the noisy frame: no reference used);
- the baseline, mean of the 4 + blur 0.75.

Also which frames the engine takes for copies of one another
(``PlaneCache.twin``: the pairs flagged, and the smallest difference of the
others in units of the plane's noise variance), and the figures behind
``static_scene``'s warning (``engine.STATIC_EXCESS``):
how much more each frame differs from its series' mean than its noise
explains, the largest per series, on the static, drift and unrelated series
and on windows of 4 neighbouring planes of the Z-stacks.

**Noise ladder (issue 12).** The per-image criterion compares with a blur
whose sigma is chosen on gt, which shares the captures' noise and brightness.
Here the same planes are rebuilt with a known truth: gt (centre 128x128 crop
at (192, 192), as benchmarks/ladder.py) plus synthetic Poisson-Gaussian noise
whose level line is the raw capture's against gt, divided by k for avg-k.
Stage 1 runs with the estimated noise (as shipped) and with the true line;
both are scored against the oracle blur (sigma 0.5-2, on the full synthetic
image) of the same truth. Wide-field images are left out (their noise is
correlated, which the synthetic noise is not). gt keeps its own noise (its
50 captures' mean), which the truth then counts as structure. Then the real
captures (all 12), with the estimated noise and with the noise line measured
against gt (:func:`ladder_real`): what a perfect noise estimate would change
where gt is the reference.

Numpy only, about a minute::

    python benchmarks/reference_limits.py --json benchmarks/results/reference_limits.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from _common import FMD_CROP, ORACLE_SIGMAS, eval_dir, fmd_first_captures, psnr, read_unit
from scipy.ndimage import gaussian_filter
from stacks import load

from napari_mpid.core.auto import plane_mix
from napari_mpid.core.engine.modes import static_excess
from napari_mpid.core.noise import estimate_noise

CROP = FMD_CROP
LEVELS = {"raw": 1, "avg2": 2, "avg4": 4, "avg8": 8}


def gain(plane: np.ndarray, reference: np.ndarray) -> float:
    """Least-squares factor taking ``reference`` to ``plane``."""
    return float(np.sum(plane * reference) / np.sum(reference * reference))


def stage1(plane: np.ndarray, noise=None) -> np.ndarray:
    noise = noise or estimate_noise(plane)
    return plane_mix(plane[None], noise, float(np.mean(noise.variance(plane))))[0][0]


def static_series() -> dict[str, object]:
    scores: dict[str, list[float]] = {}
    gains = []
    for item in load("static"):
        frames = item["noisy"].astype(np.float64) / 255.0
        common = stage1(frames.mean(axis=0))
        baseline = gaussian_filter(frames.mean(axis=0), 0.75)
        for k, frame in enumerate(frames):
            clean = item["clean"][k]
            g = gain(frame, clean)
            gains.append(g)
            found = {
                "flicker only": psnr(g * clean, clean),
                "flicker only, worst frame": psnr(g * clean, clean),
                "common": psnr(common, clean),
                "common x frame gain": psnr(gain(frame, common) * common, clean),
                "mean of 4 + blur 0.75": psnr(baseline, clean),
            }
            for name, value in found.items():
                scores.setdefault(name, []).append(value)
    out: dict[str, object] = {name: float(np.mean(v)) for name, v in scores.items()}
    out["flicker only, worst frame"] = float(np.min(scores["flicker only, worst frame"]))
    out["frame gains (min, max)"] = [float(min(gains)), float(max(gains))]
    print("static", {k: (round(v, 2) if isinstance(v, float) else v) for k, v in out.items()}, flush=True)
    return out


def static_check() -> dict[str, list[float]]:
    """The test behind ``static_scene``'s warning: the largest excess of a series over what noise explains."""
    out = {}
    for dataset in ("static", "drift", "unrelated"):
        found = []
        for item in load(dataset):
            frames = item["noisy"].astype(np.float64) / 255.0
            mean = frames.mean(axis=0)
            found.append(max(static_excess([f[None]], [mean[None]], len(frames)) for f in frames))
        out[dataset] = found
    for name in ("neuron", "pollen"):
        (item,) = load(name)
        planes = item["noisy"].astype(np.float64)
        planes /= planes.max()
        windows = [planes[i : i + 4] for i in range(0, len(planes) - 3, 8)]
        out[f"{name}, 4 neighbouring planes"] = [
            max(static_excess([p[None]], [w.mean(axis=0)[None]], 4) for p in w) for w in windows
        ]
    print("static check", {k: [round(v, 2) for v in vs] for k, vs in out.items()}, flush=True)
    return out


def copies() -> dict[str, object]:
    """The engine's test for duplicated frames (``PlaneCache.twin``) on every pair of the FMD series
    and on planes 1 and 2 apart in the Z-stacks: which pairs it takes for copies, and how far the
    others are from the threshold (their mean squared difference over the plane's noise variance)."""
    import torch

    from napari_mpid.core.run.stack import PlaneCache

    def check(planes: np.ndarray, pairs) -> tuple[list, float]:
        cache = PlaneCache(
            lambda k: torch.from_numpy(planes[k][None, None].astype(np.float32)),
            len(planes),
            torch.device("cpu"),
            2**31,
        )
        flagged, ratios = [], []
        for i, j in pairs:
            if cache.twin(i, j):
                flagged.append([i, j])
            else:
                ratios.append(float(((cache[i] - cache[j]) ** 2).mean()) / cache._levels[min(i, j)])
        return flagged, min(ratios)

    out: dict[str, object] = {"flagged": [], "smallest ratio of the others": np.inf}
    for dataset in ("static", "drift", "unrelated", "neuron", "pollen"):
        for item in load(dataset):
            planes = item["noisy"].astype(np.float64)
            planes /= 255.0 if item["noisy"].dtype == np.uint8 else planes.max()
            n = len(planes)
            pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if n <= 4 or j - i <= 2]
            flagged, smallest = check(planes, pairs)
            out["flagged"] += [f"{dataset} {item['name']} {i}-{j}" for i, j in flagged]
            out["smallest ratio of the others"] = min(out["smallest ratio of the others"], smallest)
    print("copies", out, flush=True)
    return out


def ladder(seed: int = 0) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    root = eval_dir("fmd_test_mix")
    out: dict[str, object] = {}
    for level, k in LEVELS.items():
        rows = []
        for name in fmd_first_captures():
            if name.startswith("WideField"):
                continue
            gt, raw = read_unit(root / "gt" / name), read_unit(root / "raw" / name)
            residual = (raw - gain(raw, gt) * gt) ** 2
            slope, offset = np.polyfit(gt.ravel(), residual.ravel(), 1)
            variance = np.maximum(slope * gt + offset, 1e-6) / k
            full = np.round((gt + rng.standard_normal(gt.shape) * np.sqrt(variance)) * 255) / 255
            truth, plane = gt[CROP], full[CROP]
            oracle = max(psnr(gaussian_filter(full, s)[CROP], truth) for s in ORACLE_SIGMAS)
            estimated = estimate_noise(plane)
            true_line = replace(estimated, gain=slope / k, offset=offset / k, floor=1e-6 / k)
            added = float(np.mean(variance[CROP]))
            rows.append(
                {
                    "image": name,
                    "estimated / added noise variance": float(np.mean(estimated.variance(plane))) / added,
                    "stage 1, estimated noise": psnr(stage1(plane, estimated), truth) - oracle,
                    "stage 1, true noise line": psnr(stage1(plane, true_line), truth) - oracle,
                }
            )
        summary = {
            key: {"mean": float(np.mean([r[key] for r in rows])), "worst": float(np.min([r[key] for r in rows]))}
            for key in ("stage 1, estimated noise", "stage 1, true noise line")
        }
        ratios = [r["estimated / added noise variance"] for r in rows]
        summary["estimated / added noise variance (min, max)"] = [float(min(ratios)), float(max(ratios))]
        out[level] = {"summary": summary, "rows": rows}
        print(level, json.dumps(summary), flush=True)
    return out


def ladder_real() -> dict[str, object]:
    """The real captures: stage 1 with the estimated noise and with the noise line measured against gt.

    The measured line is the squared residual of the capture against gt
    (scaled to the capture's brightness) fitted linearly in the local
    intensity (sigma-2 blur), divided by ``1 - k/50``: gt, the mean of 50
    captures, includes the k averaged into avg-k, which shrinks their
    residual by that factor.
    """
    root = eval_dir("fmd_test_mix")
    out: dict[str, object] = {}
    for level, k in LEVELS.items():
        rows = []
        for name in fmd_first_captures():
            full, gt = read_unit(root / level / name), read_unit(root / "gt" / name)[CROP]
            plane = full[CROP]
            residual = (plane - gain(plane, gt) * gt) ** 2 / (1 - k / 50)
            slope, offset = np.polyfit(gaussian_filter(plane, 2.0).ravel(), residual.ravel(), 1)
            estimated = estimate_noise(plane)
            measured = replace(estimated, gain=slope, offset=offset, floor=max(float(np.percentile(residual, 1)), 1e-7))
            oracle = max(psnr(gaussian_filter(full, s)[CROP], gt) for s in ORACLE_SIGMAS)
            rows.append(
                {
                    "image": name,
                    "capture gain against gt": gain(plane, gt),
                    "estimated / measured noise variance": float(np.mean(estimated.variance(plane)))
                    / float(np.mean(measured.variance(plane))),
                    "stage 1, estimated noise": psnr(stage1(plane, estimated), gt) - oracle,
                    "stage 1, measured noise line": psnr(stage1(plane, measured), gt) - oracle,
                }
            )
        summary = {
            key: {"mean": float(np.mean([r[key] for r in rows])), "worst": float(np.min([r[key] for r in rows]))}
            for key in ("stage 1, estimated noise", "stage 1, measured noise line")
        }
        out[level] = {"summary": summary, "rows": rows}
        print(level, "real", json.dumps(summary), flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    found = {
        "static": static_series(),
        "static check": static_check(),
        "copies": copies(),
        "ladder (synthetic noise over gt)": ladder(),
        "ladder (real captures)": ladder_real(),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(found, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
