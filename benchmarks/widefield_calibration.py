"""Correlated noise's level: a calibration indexed by the blocks' lags 1-2 against one indexed by lags 1-3.

Not a test: a measurement for docs/benchmarks.md ("Noise estimate").
:func:`~napari_mpid.core.noise.estimate_noise` corrects the flat blocks'
variance of correlated noise by a calibration simulated on blurred white
noise (kernels [t, s, 1, s, t]) and indexed by the blocks' measured
residual lag-1 and lag-2 correlations (``lags 1-2``, as shipped). Replayed
here beside it: a calibration whose kernels reach [u, t, s, 1, s, t, u]
(u in :data:`TAILS`), indexed by the measured lags 1-3 (``lags 1-3``), built
the same way (same blocks, seed, level spread, fold and cubic fit). Both
rules side by side:

- every FMD plane (raw, avg2, avg4, avg8, avg16; captures 1-4; full 512x512
  and the centre 128x128 crop): the variance over the one measured against
  gt (gain and offset of gt fitted, times 50 / (50 - k) for a mean of k
  captures) and the white/correlated decision;
- the neuron and pollen Z-stacks (planes 5, 20, 30): the estimates;
- the auto preset's mix alone (``combine`` without candidates, 4 % held out,
  no network) on the wide-field planes: full raw images (with the oracle
  blur, sigma 0.5-4 chosen with gt) and the ladder crops raw-avg8.

Development = capture 1; captures 2-4 are held out.

    python benchmarks/widefield_calibration.py --json benchmarks/results/widefield_calibration.json
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile
import torch
from _common import FMD_CROP, eval_dir, gt_residual, mix_alone_psnr, psnr, read_unit
from mix_nonlinear import ORACLE, blur

from napari_mpid.core import noise

LEVELS = {"raw": 1, "avg2": 2, "avg4": 4, "avg8": 8, "avg16": 16}
RULES = ("lags 1-2", "lags 1-3")
#: The third tap u of the replayed kernels [u, t, s, 1, s, t, u] (t, u < 0: less correlation at lags 2-4).
TAILS = np.linspace(-0.1, 0.2, 7)
#: Lags 1-3 of the offsets that share one tap weight (1, s, t, u).
TAP_GROUPS = ((0,), (-1, 1), (-2, 2), (-3, 3))


def lags3(residual: np.ndarray) -> tuple[float, float, float]:
    """Lag-1 to lag-3 correlations of block residuals, each the mean of the horizontal and vertical one."""
    norm = float((residual**2).sum())
    if norm <= 0:
        return 0.0, 0.0, 0.0
    found = []
    for d in (1, 2, 3):
        horizontal = float((residual[:, :, d:] * residual[:, :, :-d]).sum())
        vertical = float((residual[:, d:, :] * residual[:, :-d, :]).sum())
        found.append((horizontal + vertical) / (2 * norm))
    return found[0], found[1], found[2]


@functools.cache
def table3() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(measured lags 1-3 as rows, true lag-1, variance bias) per kernel [u, t, s, 1, s, t, u].

    :func:`napari_mpid.core.noise._calibration_table` with a third tap: the
    same 4000 blocks per kernel, level spread, selection and fold.
    """
    n, block, half = 4000, noise.BLOCK, len(TAP_GROUPS) - 1
    rng = np.random.default_rng(0)
    white = rng.standard_normal((n, block + 2 * half, block + 2 * half))
    level = np.exp(noise.LEVEL_SPREAD * rng.standard_normal(n) - noise.LEVEL_SPREAD**2 / 2)

    def taps(x: np.ndarray, axis: int, offsets: tuple[int, ...]) -> np.ndarray:
        return sum(np.take(x, range(half + o, half + o + block), axis=axis) for o in offsets)

    rows = [taps(white, 1, g) for g in TAP_GROUPS]
    parts = np.stack([taps(r, 2, g) for r in rows for g in TAP_GROUPS], axis=1).reshape(-1, block, block)
    _, residual = noise._detrend(parts)
    residual = residual.reshape(n, len(TAP_GROUPS) ** 2, block, block)
    gram = np.einsum("bkyx,blyx->bkl", residual, residual) * level[:, None, None]
    lagged = [
        (
            np.einsum("bkyx,blyx->bkl", residual[..., d:], residual[..., :-d])
            + np.einsum("bkyx,blyx->bkl", residual[:, :, d:], residual[:, :, :-d])
        )
        * level[:, None, None]
        for d in (1, 2, 3)
    ]
    keep_count = int(n * noise.FLAT_FRACTION)
    measured, true, bias = [], [], []
    for s, t, u in itertools.product(noise._STRENGTHS, noise._REACHES, TAILS):
        if s > noise._FOLD + t + 1e-9:
            continue
        norm = 1 + 2 * (s * s + t * t + u * u)
        weights = np.outer([1.0, s, t, u], [1.0, s, t, u]).ravel() / norm
        squares = np.einsum("bkl,k,l->b", gram, weights, weights)
        keep = np.argpartition(squares, keep_count)[:keep_count]
        total = squares[keep].sum()
        measured.append([float(weights @ m[keep].sum(axis=0) @ weights) / (2 * total) for m in lagged])
        true.append((2 * s + 2 * s * t + 2 * t * u) / norm)
        bias.append(total / keep_count / (block * block - noise._TERMS))
    return np.array(measured).T, np.array(true), np.array(bias)


def terms3(lags: np.ndarray) -> np.ndarray:
    """Monomials of the three measured lags up to degree ``noise._DEGREE``."""
    powers = [p for p in itertools.product(range(noise._DEGREE + 1), repeat=3) if sum(p) <= noise._DEGREE]
    return np.array([float(np.prod(lags ** np.array(p))) for p in powers])


@functools.cache
def fit3() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cubic least-squares fits of the true lag-1 and the log bias in the measured lags 1-3, and their box."""
    measured, true, bias = table3()
    design = np.stack([terms3(column) for column in measured.T])
    coefficients, *_ = np.linalg.lstsq(design, np.stack([true, np.log(bias)], axis=1), rcond=None)
    return coefficients[:, 0], coefficients[:, 1], np.stack([measured.min(axis=1), measured.max(axis=1)])


def calibration3(lag1: float, lag2: float, lag3: float) -> tuple[float, float]:
    """The replayed calibration: true lag-1 and variance bias for the measured lags 1-3 (clipped as shipped)."""
    true_fit, bias_fit, box = fit3()
    _, table_true, table_bias = table3()
    terms = terms3(np.clip(np.array([lag1, lag2, lag3]), box[0], box[1]))
    true = float(np.clip(terms @ true_fit, 0.0, table_true.max()))
    return true, float(np.clip(np.exp(terms @ bias_fit), table_bias.min(), table_bias.max()))


@contextlib.contextmanager
def calibration_rule(name: str) -> Iterator[None]:
    """Within the block, :func:`estimate_noise` uses the named calibration."""
    saved = noise._lags, noise._calibration
    if name == "lags 1-3":
        noise._lags, noise._calibration = lags3, calibration3
    try:
        yield
    finally:
        noise._lags, noise._calibration = saved


def measure(rule_name: str, planes: list[dict], stacks: dict, report: dict, mix: bool) -> None:
    """Every plane's estimate (and the wide-field planes' mix alone) under the calibration in use."""
    for p in planes:
        e = noise.estimate_noise(p["plane"])
        p[f"{rule_name} ratio"] = e.sigma**2 / p["measured"]
        p[f"{rule_name} correlation"] = e.correlation
        p[f"{rule_name} estimate"] = e.as_dict()
    report[f"{rule_name} stacks"] = {s: [noise.estimate_noise(z).as_dict() for z in zs] for s, zs in stacks.items()}
    if not mix:
        return
    for p in planes:
        # The ladder's crops (raw to avg8) and the full raw images.
        chosen = p["level"] != "avg16" if p["crop"] else p["level"] == "raw"
        if "WideField" in p["image"] and chosen:
            p[f"{rule_name} mix"] = mix_alone_psnr(p["plane"], p["clean"], noise.estimate_noise(p["plane"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-mix", action="store_true", help="estimates only")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    root = eval_dir("fmd_test_mix")
    configs = sorted({p.name.rsplit("_", 1)[0] for p in (root / "raw").glob("*.png")})
    planes = []
    for level, k in LEVELS.items():
        for capture in "1234":
            for config in configs:
                name = f"{config}_{capture}.png"
                full, clean = read_unit(root / level / name), read_unit(root / "gt" / name)
                for crop in (False, True):
                    plane, reference = (full[FMD_CROP], clean[FMD_CROP]) if crop else (full, clean)
                    measured = float(np.mean(gt_residual(plane, reference)[0] ** 2)) * 50 / (50 - k)
                    planes.append(
                        {
                            "image": f"{level}/{name}" + (" crop" if crop else ""),
                            "level": level,
                            "capture": capture,
                            "crop": crop,
                            "measured": measured,
                            "plane": plane,
                            "clean": reference,
                        }
                    )
    stacks = {}
    for stack in ("neuron", "pollen"):
        noisy = tifffile.imread(eval_dir("zstacks", f"{stack}_noisy.tif")).astype(np.float64)
        stacks[stack] = [noisy[z] for z in (5, 20, 30)]
    noise._calibration_fit()
    start = time.perf_counter()
    fit3()
    report: dict = {"lags 1-3 calibration seconds": time.perf_counter() - start}
    for rule_name in RULES:
        with calibration_rule(rule_name):
            measure(rule_name, planes, stacks, report, not args.no_mix)
    first, second = RULES
    changed = [p["image"] for p in planes if (p[f"{first} correlation"] == 0) != (p[f"{second} correlation"] == 0)]
    other = [p for p in planes if "WideField" not in p["image"]]
    moved = [p["image"] for p in other if abs(p[f"{second} ratio"] / p[f"{first} ratio"] - 1) > 1e-9]
    report["decisions changed"] = changed
    report["confocal/two-photon estimates changed"] = moved
    report["stacks unchanged"] = report[f"{first} stacks"] == report[f"{second} stacks"]
    print(f"decisions changed: {changed}; confocal/two-photon estimates changed: {len(moved)}")
    print(
        f"stacks unchanged: {report['stacks unchanged']}; lags 1-3 table and fit {report['lags 1-3 calibration seconds']:.1f} s"
    )
    groups: dict = {}
    for p in planes:
        if "WideField" not in p["image"]:
            continue
        part = "dev" if p["capture"] == "1" else "held out"
        key = f"{p['level']} {'crops' if p['crop'] else 'full'}, {part}"
        groups.setdefault(key, []).append(p)
    summary = {}
    for key, ps in groups.items():
        entry = {}
        for rule in RULES:
            ratios = [p[f"{rule} ratio"] for p in ps]
            entry[rule] = {
                "ratio range": [round(min(ratios), 3), round(max(ratios), 3)],
                "outside 15 %": sum(abs(r - 1) > 0.15 for r in ratios),
            }
            if f"{rule} mix" in ps[0]:
                entry[rule]["mix"] = round(float(np.mean([p[f"{rule} mix"] for p in ps])), 3)
        if f"{second} mix" in ps[0]:
            gains = [p[f"{second} mix"] - p[f"{first} mix"] for p in ps]
            entry["mix gain range"] = [round(min(gains), 3), round(max(gains), 3)]
        summary[key] = entry
        print(key, json.dumps(entry))
    rows = []
    for p in planes:
        if "WideField" in p["image"]:
            if not p["crop"] and p["level"] == "raw" and not args.no_mix:
                p["oracle blur"] = max(psnr(blur(p["plane"], s), p["clean"]) for s in ORACLE)
            keep = {k: v for k, v in p.items() if k not in ("plane", "clean")}
            rows.append(keep)
            shown = "  ".join(
                f"{r}: {p[f'{r} ratio']:.2f}" + (f" mix {p[f'{r} mix']:.2f}" if f"{r} mix" in p else "") for r in RULES
            )
            extra = f"  oracle {p['oracle blur']:.2f}" if "oracle blur" in p else ""
            print(f"{p['image']:38s} {shown}{extra}")
    report["summary"] = summary
    report["wide-field rows"] = rows
    report["command"] = "python benchmarks/widefield_calibration.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
