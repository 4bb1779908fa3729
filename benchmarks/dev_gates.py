"""The auto preset's gates and thresholds re-checked on the development subset alone (issue 20, item 3).

Not a test: a measurement to run by hand. docs/constants.md declares the
development subset: FMD test_mix capture 1 of each of the 12 configurations
(``<config>_1.png`` at raw, avg2, avg4, avg8 and avg16, full 512x512 images
and the noise ladder's 128x128 crops) and the neuron Z-stack. Nothing else
is read here (no capture 2-4, no pollen, no CSet9).

``gates``: for every development plane, the statistics that the gates of
the auto path compare with a constant, so that each constant's margin on
either side can be read off:

- the noise's lag-1 correlation (``auto.CORRELATED``);
- the patch share, the smallest eigenvalues of the 6x6-patch covariance
  over the flat blocks' level (``noise.SPECTRAL_FLOOR``), with the blocks'
  own lag-1 correlation;
- the noise-level spread, the variance of the noise-level line at the 90th
  over the 10th percentile of the pixels (``auto.SIGNAL_DEPENDENT``); on
  planes of pixel-independent noise only, as the engine asks it. The
  gate's other side needs noise of one level: constant Gaussian noise is
  added to the development gt images (at the raw capture's RMS noise, and
  at a quarter of its variance) and to neuron's clean planes (at its added
  noise's mean variance);
- for neuron, how closely the means of the neighbour planes (the auto
  mix's ``neighbours 1`` and ``neighbours 2``) and each single neighbour
  match the plane, in units of its estimated noise variance
  (``auto.risk.NOT_INDEPENDENT`` and ``run.stack.TWIN_SHARE``, 0.1 each:
  independent noise gives 1 + 1/k for a mean of k planes, plus whatever
  structure differs).

``evidence``: the held-out stage of the final mix needs the network's
filling, which the auto preset no longer runs on any development plane
(correlated or shot noise); with ``--network always`` on the ladder's
capture-1 crops, what :func:`~napari_mpid.core.auto.combine` gives for
several values of its ``evidence`` argument on the same inputs (the
filling is computed once per crop; ``inf`` is stage 1 alone).

Example::

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/dev_gates.py gates \\
        --json benchmarks/results/dev_gates.json
    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/dev_gates.py evidence --levels raw \\
        --json benchmarks/results/dev_evidence_raw.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import tifffile
from _common import FMD_CROP, eval_dir, fmd_first_captures, psnr, read_gray, read_unit, run_to_end

from napari_mpid.core.auto import CORRELATED, SIGNAL_DEPENDENT
from napari_mpid.core.noise import SPECTRAL_FLOOR, block_estimate, estimate_noise, patch_noise_variance

LEVELS = ("raw", "avg2", "avg4", "avg8", "avg16")
#: The values of combine's ``evidence`` argument replayed by ``evidence``.
EVIDENCE_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, math.inf)


def spread(plane: np.ndarray) -> float:
    """Noise-level spread of a plane: the line's variance at the 90th over the 10th percentile of its pixels."""
    found = estimate_noise(plane)
    variance = np.asarray(found.variance(plane.ravel()))
    low = float(np.percentile(variance, 10))
    return float(np.percentile(variance, 90)) / low if low > 0 else math.inf


def statistics(plane: np.ndarray) -> dict[str, float]:
    """The gate statistics of one ``(H, W)`` plane (any units)."""
    blocks = block_estimate(plane)
    found = estimate_noise(plane)
    level = blocks.sigma**2
    return {
        "correlation": round(found.correlation, 4),
        "block lag-1": round(blocks.correlation, 4),
        "patch share": round(patch_noise_variance(plane) / level, 4) if level > 0 else math.nan,
        "spread": round(spread(plane), 3),
    }


def fmd_planes():
    """(set, level, name, plane in [0, 1]) of the development FMD images, full and as the ladder's crops."""
    root = eval_dir("fmd_test_mix")
    for level in LEVELS:
        for name in fmd_first_captures():
            full = read_unit(root / level / name)
            yield "FMD full", level, name, full
            yield "FMD crops", level, name, np.ascontiguousarray(full[FMD_CROP])


def constant_controls(rng: np.random.Generator):
    """(set, level, name, plane) with Gaussian noise of one level over the development clean images."""
    root = eval_dir("fmd_test_mix")
    for name in fmd_first_captures():
        gt = read_unit(root / "gt" / name)
        variance = float(np.mean((read_unit(root / "raw" / name) - gt) ** 2))
        for label, v in (("raw level", variance), ("a quarter of it", variance / 4)):
            noisy = gt + rng.normal(0.0, math.sqrt(v), gt.shape)
            yield "FMD gt + constant noise", label, name, noisy
            yield "FMD gt crops + constant noise", label, name, np.ascontiguousarray(noisy[FMD_CROP])
    clean = tifffile.imread(eval_dir("zstacks", "neuron_clean.tif")).astype(np.float64)
    # The added noise's mean variance (../shared/DATA.md: Poisson(clean x 20) / 20 + N(0, 0.02^2)).
    variance = float(np.mean(clean / 20 + 0.02**2))
    for z in range(0, len(clean), 5):
        yield (
            "neuron clean + constant noise",
            "mean level",
            f"plane {z}",
            clean[z] + rng.normal(0.0, math.sqrt(variance), clean[z].shape),
        )


def neuron_neighbours(noisy: np.ndarray) -> dict[str, list[float]]:
    """Per plane, the squared difference to neighbour means and to single neighbours over its noise variance."""
    out: dict[str, list[float]] = {"mean of neighbours 1": [], "mean of neighbours 2": [], "single neighbour": []}
    count = len(noisy)
    for z in range(count):
        plane = noisy[z]
        variance = float(np.mean(estimate_noise(plane).variance(plane)))
        for d, key in ((1, "mean of neighbours 1"), (2, "mean of neighbours 2")):
            around = [j for j in range(z - d, z + d + 1) if j != z and 0 <= j < count]
            out[key].append(float(np.mean((np.mean(noisy[around], axis=0) - plane) ** 2)) / variance)
        for j in (z - 1, z + 1):
            if 0 <= j < count:
                out["single neighbour"].append(float(np.mean((noisy[j] - plane) ** 2)) / variance)
    return out


def summary(rows: list[dict]) -> dict[str, dict]:
    """Min / max of each statistic per (set, level), split by the CORRELATED gate for the spread."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(f"{row['set']}, {row['level']}", []).append(row)
    out = {}
    for key, members in groups.items():
        white = [r for r in members if r["correlation"] < CORRELATED]
        correlated = [r for r in members if r["correlation"] >= CORRELATED]
        out[key] = {
            "planes": len(members),
            "correlated (>= CORRELATED)": len(correlated),
            "correlation of the others, max": max((r["correlation"] for r in white), default=None),
            "correlation of the correlated, min": min((r["correlation"] for r in correlated), default=None),
            "patch share of the correlated, max": max((r["patch share"] for r in correlated), default=None),
            "patch share of the others, min": min((r["patch share"] for r in white), default=None),
            "spread of the others, min": min((r["spread"] for r in white), default=None),
            "spread of the others, max": max((r["spread"] for r in white), default=None),
        }
    return out


def gates() -> dict[str, object]:
    rows = []
    for source in (fmd_planes(), constant_controls(np.random.default_rng(20))):
        for data, level, name, plane in source:
            rows.append({"set": data, "level": level, "image": name, **statistics(plane)})
    noisy = tifffile.imread(eval_dir("zstacks", "neuron_noisy.tif")).astype(np.float64)
    for z in range(len(noisy)):
        rows.append({"set": "neuron", "level": "noisy", "image": f"plane {z}", **statistics(noisy[z])})
    ratios = neuron_neighbours(noisy)
    return {
        "constants": {"CORRELATED": CORRELATED, "SPECTRAL_FLOOR": SPECTRAL_FLOOR, "SIGNAL_DEPENDENT": SIGNAL_DEPENDENT},
        "summary": summary(rows),
        "neuron: difference to neighbours / noise variance (min, median, max)": {
            k: [round(float(np.min(v)), 3), round(float(np.median(v)), 3), round(float(np.max(v)), 3)]
            for k, v in ratios.items()
        },
        "rows": rows,
    }


def evidence(levels: list[str]) -> dict[str, object]:
    """The ladder's capture-1 crops with the network always on: combine replayed at several ``evidence`` values."""
    import napari_mpid.core.engine as engine
    import napari_mpid.core.engine.parts as parts
    from napari_mpid.api import load_model
    from napari_mpid.core.auto import combine
    from napari_mpid.core.params import preset

    def captured(run) -> list[tuple]:
        """Run the engine generator ``run`` with the plane filler's ``combine`` intercepted; its inputs per plane."""
        calls = []

        def spy(noisy, candidates, held, noise, **kw):
            calls.append((noisy.copy(), {k: (v[0].copy(), v[1]) for k, v in candidates.items()}, held.copy(), noise,
                          {k: v.copy() for k, v in (kw.get("independent") or {}).items()}))  # fmt: skip
            return combine(noisy, candidates, held, noise, **kw)

        parts.combine = spy
        try:
            run_to_end(run)
        finally:
            parts.combine = combine
        return calls

    model = load_model("real-noise", "cpu")
    root = eval_dir("fmd_test_mix")
    rows = []
    for level in levels:
        for name in fmd_first_captures():
            crop = np.ascontiguousarray(read_gray(root / level / name)[FMD_CROP])
            clean = read_unit(root / "gt" / name)[FMD_CROP][None]
            params = preset("auto", model="real-noise", device="cpu", network="always")
            start = time.perf_counter()
            (call,) = captured(engine.denoise_planes(crop, params, model=model, noise_map=False))
            noisy, candidates, held, noise, independent = call
            row: dict[str, object] = {"level": level, "image": name, "seconds": round(time.perf_counter() - start, 1)}
            for value in EVIDENCE_VALUES:
                mixed, how = combine(noisy, candidates, held, noise, evidence=value, independent=independent)
                row[f"evidence {value:g}"] = round(psnr(mixed, clean), 3)
                if value == 1.0:
                    row["t"] = round(how.evidence, 2)
            rows.append(row)
            print({k: v for k, v in row.items()}, flush=True)
    means = {
        level: {
            f"evidence {v:g}": round(float(np.mean([r[f"evidence {v:g}"] for r in rows if r["level"] == level])), 3)
            for v in EVIDENCE_VALUES
        }
        for level in levels
    }
    return {"means": means, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("gates", "evidence"))
    parser.add_argument("--levels", nargs="+", default=["raw"], help="evidence: ladder levels (capture 1)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    result = gates() if args.what == "gates" else evidence(args.levels)
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["subset"] = "development: FMD test_mix capture 1 (<config>_1.png) and the neuron Z-stack"
    text = json.dumps(result, indent=1, default=float)
    if args.json:
        args.json.write_text(text + "\n")
    shown = {k: v for k, v in result.items() if k != "rows"}
    print(json.dumps(shown, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
