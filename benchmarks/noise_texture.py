"""The white-noise line's slope with and without texture: blocks' line against the highest frequencies' line (issue 20).

Not a test: a measurement to run by hand and record in docs/benchmarks.md
("Noise estimate"). On pixel-independent noise,
:func:`~napari_mpid.core.noise.estimate_noise` takes the level from the
patch spectrum and, until this comparison, the line's shape (gain, offset,
floor) from the quietest quarter of 8x8 detrended blocks per intensity bin
("before"). Texture in the bright blocks tilts that line, and the noise-level
spread (``auto.SIGNAL_DEPENDENT``) then calls noise of one level shot noise.
"after" is the code in src: the line's shape from the squared response to
``[1, -2, 1] x [1, -2, 1]`` per intensity bin
(:func:`~napari_mpid.core.noise.highpass_line`). Both are rescaled to the
same level, so the plane's mean variance is the same; only the shape differs.

``spreads``: the 90th/10th percentile ratio of the line's variance over the
pixels, per group, before and after, and how many planes reach
``SIGNAL_DEPENDENT``. ``mix``: PSNR of the auto preset's mix alone (no
network) with either estimate, on white-noise planes (the correlated branch
is the same code in both).

Development subset (chooses): FMD test_mix capture 1 (full images and the
ladder's 128x128 crops), the neuron Z-stack, and the constant-noise controls
built on them (as ``dev_gates.py``: Gaussian noise of one level added to
capture 1's gt at the raw capture's variance and a quarter of it; gt, the
mean of 50 captures, keeps 1/50 of the raw shot noise, so the controls are
not exactly of one level). Held out (reported apart): captures 2-4, pollen,
CSet9.

Example::

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/noise_texture.py \\
        --json benchmarks/results/noise_texture.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import tifffile
from _common import FMD_CROP, eval_dir, gt_residual, mix_alone_psnr, read_unit

from napari_mpid.core.auto import CORRELATED, SIGNAL_DEPENDENT
from napari_mpid.core.noise import (
    MAX_PATCHES,
    PATCH,
    SPECTRAL_FLOOR,
    NoiseEstimate,
    block_estimate,
    estimate_noise,
    highpass_line,
    patch_noise_variance,
)

LEVELS = ("raw", "avg2", "avg4", "avg8", "avg16")


def before(plane: np.ndarray) -> NoiseEstimate:
    """The former rule: on white noise, the blocks' line rescaled to the patch variance."""
    data = np.asarray(plane, dtype=np.float64)
    blocks = block_estimate(data)
    level = blocks.sigma**2
    patches = patch_noise_variance(data)
    if not patches > SPECTRAL_FLOOR * level:
        return estimate_noise(data)
    s = patches / level if level > 0 else 1.0
    return NoiseEstimate(float(np.sqrt(patches)), 0.0, blocks.gain * s, blocks.offset * s, blocks.floor * s)


#: ``--level median``: "after" also takes the white-noise variance from median_tail_level (tried, not in src).
LEVEL_RULE = "tail"


def after(plane: np.ndarray) -> NoiseEstimate:
    found = estimate_noise(np.asarray(plane, dtype=np.float64))
    if LEVEL_RULE == "tail" or found.correlation != 0.0 or found.sigma <= 0:
        return found
    s = median_tail_level(plane, found) / found.sigma**2
    return NoiseEstimate(float(found.sigma * np.sqrt(s)), 0.0, found.gain * s, found.offset * s, found.floor * s)


def spread_of(variance: np.ndarray) -> float:
    low = float(np.percentile(variance, 10))
    return float(np.percentile(variance, 90)) / low if low > 0 else math.inf


def spread(rule, plane: np.ndarray) -> tuple[float, bool]:
    """(spread, white) of a ``(H, W)`` or ``(C, H, W)`` plane; channels averaged as estimate_noise_channels does."""
    channels = plane[None] if plane.ndim == 2 else plane
    found = [rule(c) for c in channels]
    gain, offset, floor = (float(np.mean([getattr(f, k) for f in found])) for k in ("gain", "offset", "floor"))
    variance = np.maximum(gain * channels.reshape(-1) + offset, floor)
    white = float(np.mean([f.correlation for f in found])) < CORRELATED
    return spread_of(variance), white


def measured_spread(plane: np.ndarray, clean: np.ndarray) -> float:
    """The spread measured against gt: residual variance over the 85-95th over the 5-15th percentile of gt's intensity.

    The residual is the plane minus gt with gt's gain and offset fitted; no
    line is fitted, so this is what a line's spread should come close to.
    """
    residual, fitted = gt_residual(plane, clean)
    low, high = (np.percentile(fitted, q) for q in ((5, 15), (85, 95)))
    lower = residual[(fitted >= low[0]) & (fitted <= low[1])].var()
    upper = residual[(fitted >= high[0]) & (fitted <= high[1])].var()
    return float(upper / lower) if lower > 0 else math.inf


def configs(root: Path) -> list[str]:
    return sorted({p.name.rsplit("_", 1)[0] for p in (root / "raw").glob("*.png")})


def fmd_items(captures: str, levels=LEVELS, full_levels=LEVELS):
    """(group, name, plane, clean) for FMD full images (at ``full_levels``) and the ladder's crops."""
    root = eval_dir("fmd_test_mix")
    for capture in captures:
        for level in levels:
            for c in configs(root):
                name = f"{c}_{capture}.png"
                full, gt = read_unit(root / level / name), read_unit(root / "gt" / name)
                if level in full_levels:
                    yield f"FMD full {level}, capture {capture}", name, full, gt
                yield f"FMD crops {level}, capture {capture}", name, np.ascontiguousarray(full[FMD_CROP]), gt[FMD_CROP]


def controls():
    """dev_gates.py's constant-noise controls on capture 1's gt, and neuron's clean planes (same seed)."""
    rng = np.random.default_rng(20)
    root = eval_dir("fmd_test_mix")
    for c in configs(root):
        name = f"{c}_1.png"
        gt = read_unit(root / "gt" / name)
        variance = float(np.mean((read_unit(root / "raw" / name) - gt) ** 2))
        for label, v in (("raw level", variance), ("a quarter of it", variance / 4)):
            noisy = gt + rng.normal(0.0, math.sqrt(v), gt.shape)
            yield f"control full, {label}", name, noisy, gt
            yield f"control crops, {label}", name, np.ascontiguousarray(noisy[FMD_CROP]), gt[FMD_CROP]
    clean = tifffile.imread(eval_dir("zstacks", "neuron_clean.tif")).astype(np.float64)
    variance = float(np.mean(clean / 20 + 0.02**2))
    for z in range(0, len(clean), 5):
        yield (
            "control neuron, mean level",
            f"plane {z}",
            clean[z] + rng.normal(0.0, math.sqrt(variance), clean[z].shape),
            clean[z],
        )


def stack_items(stack: str, every: int = 1):
    noisy = tifffile.imread(eval_dir("zstacks", f"{stack}_noisy.tif")).astype(np.float64)
    clean = tifffile.imread(eval_dir("zstacks", f"{stack}_clean.tif")).astype(np.float64)
    for z in range(0, len(noisy), every):
        yield stack, f"plane {z}", noisy[z], clean[z]


def cset9_items():
    from eval_quality import load_cset9

    for name, noisy, clean in load_cset9(128, 25.0):
        yield "CSet9 crops, Gaussian sigma 25", name, noisy.transpose(2, 0, 1).astype(np.float64), clean
    for name, noisy, clean in load_cset9(None, 25.0):
        yield "CSet9 full, Gaussian sigma 25", name, noisy.transpose(2, 0, 1).astype(np.float64), clean


def run_spreads(sources) -> dict:
    groups: dict[str, list[dict]] = {}
    for source in sources:
        for group, name, plane, clean in source:
            (b, white), (a, _) = spread(before, plane), spread(after, plane)
            if white:
                row = {"image": name, "before": round(b, 3), "after": round(a, 3)}
                if group.startswith("FMD"):
                    row["measured"] = round(measured_spread(plane, clean), 3)
                groups.setdefault(group, []).append(row)
    out = {}
    for group, rows in groups.items():
        b, a = np.array([r["before"] for r in rows]), np.array([r["after"] for r in rows])
        out[group] = {
            "white planes": len(rows),
            "before min-max": [round(float(b.min()), 2), round(float(b.max()), 2)],
            "after min-max": [round(float(a.min()), 2), round(float(a.max()), 2)],
            "reaching SIGNAL_DEPENDENT before / after": [
                int((b >= SIGNAL_DEPENDENT).sum()),
                int((a >= SIGNAL_DEPENDENT).sum()),
            ],
            "rows": rows,
        }
        if "measured" in rows[0]:
            m = np.array([r["measured"] for r in rows])
            out[group]["measured min-max"] = [round(float(m.min()), 2), round(float(m.max()), 2)]
            out[group]["median |log(spread / measured)|, before / after"] = [
                round(float(np.median(np.abs(np.log(b / m)))), 3),
                round(float(np.median(np.abs(np.log(a / m)))), 3),
            ]
            print(f"{'':42s} measured {m.min():.2f}-{m.max():.2f}, median |log ratio| before "
                  f"{np.median(np.abs(np.log(b / m))):.3f} after {np.median(np.abs(np.log(a / m))):.3f}")  # fmt: skip
        print(f"{group:42s} n={len(rows):3d} before {b.min():6.2f}-{b.max():8.2f} after {a.min():6.2f}-{a.max():8.2f} "
              f">=gate {(b >= SIGNAL_DEPENDENT).sum()} -> {(a >= SIGNAL_DEPENDENT).sum()}", flush=True)  # fmt: skip
    return out


def run_mix(sources) -> dict:
    groups: dict[str, list[dict]] = {}
    for source in sources:
        for group, name, plane, clean in source:
            found_b, found_a = before(plane), after(plane)
            if found_a.correlation >= CORRELATED:
                continue
            row = {"image": name, "before": mix_alone_psnr(plane, clean, found_b)}
            same = (found_a.gain, found_a.offset, found_a.floor) == (found_b.gain, found_b.offset, found_b.floor)
            row["after"] = row["before"] if same else mix_alone_psnr(plane, clean, found_a)
            groups.setdefault(group, []).append(row)
    out = {}
    for group, rows in groups.items():
        b, a = np.array([r["before"] for r in rows]), np.array([r["after"] for r in rows])
        d = a - b
        out[group] = {
            "white planes": len(rows),
            "before": round(float(b.mean()), 3),
            "after": round(float(a.mean()), 3),
            "change": round(float(d.mean()), 3),
            "change min, max": [round(float(d.min()), 3), round(float(d.max()), 3)],
            "rows": rows,
        }
        print(f"{group:42s} n={len(rows):3d} {b.mean():.3f} -> {a.mean():.3f} ({d.mean():+.3f}, {d.min():+.2f}..{d.max():+.2f})",
              flush=True)  # fmt: skip
    return out


def median_tail_level(plane: np.ndarray, found: NoiseEstimate) -> float:
    """A texture-robust white-noise variance, tried for the level (not in src): the median of the patches' tail energy.

    Each 6x6 patch's energy in the eigen-directions that ``patch_noise_variance``
    takes as noise, over the line's variance at the patch's mean, has a median
    that texture confined to a minority of patches does not move; it is turned
    into a mean with the chi-square median of the tail's effective degrees of
    freedom (``(sum l)^2 / sum l^2`` of its eigenvalues l) and scaled by the
    line's mean over the plane.
    """
    data = np.asarray(plane, dtype=np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(data, (PATCH, PATCH))
    step = max(1, int(np.ceil(np.sqrt(windows.shape[0] * windows.shape[1] / MAX_PATCHES))))
    vectors = windows[::step, ::step].reshape(-1, PATCH * PATCH)
    centred = vectors - vectors.mean(axis=0)
    values, basis = np.linalg.eigh(centred.T @ centred / len(centred))
    values, basis = values[::-1], basis[:, ::-1]
    start = next(i for i in range(len(values)) if values[i:].mean() <= np.median(values[i:]))
    tail = values[start:]
    energy = ((centred @ basis[:, start:]) ** 2).mean(axis=1)
    ratio = energy / np.maximum(found.variance(vectors.mean(axis=1)), 1e-12)
    freedom = tail.sum() ** 2 / (tail**2).sum()
    return float(np.median(ratio) / (1 - 2 / (9 * freedom)) ** 3 * np.mean(found.variance(data)))


def run_level(captures: str) -> dict:
    """White-noise variance over the measured one: the patch tail (src) and its median form, on ladder crops.

    Also on the same crops cut from full images shifted by (1.5, 1.0) px with
    cubic interpolation, as the drift series' odd frames are (their noise is
    low-pass; measured against gt shifted the same way).
    """
    from scipy.ndimage import shift

    root = eval_dir("fmd_test_mix")
    out = {}
    for moved in (False, True):
        for level in ("raw", "avg2", "avg4", "avg8"):
            rows = []
            for c in configs(root):
                for capture in captures[:1] if moved else captures:
                    name = f"{c}_{capture}.png"
                    noisy, gt = read_unit(root / level / name), read_unit(root / "gt" / name)
                    if moved:
                        noisy = shift(noisy, (1.5, 1.0), order=3, mode="reflect")
                        gt = shift(gt, (1.5, 1.0), order=3, mode="reflect")
                    noisy, gt = np.ascontiguousarray(noisy[FMD_CROP]), gt[FMD_CROP]
                    found = estimate_noise(noisy)
                    if found.correlation >= CORRELATED:
                        continue
                    k = 1 if level == "raw" else int(level[3:])
                    measured = float(np.mean(gt_residual(noisy, gt)[0] ** 2)) * 50 / (50 - k)
                    rows.append(
                        {
                            "image": name,
                            "tail": round(found.sigma**2 / measured, 3),
                            "median": round(median_tail_level(noisy, found) / measured, 3),
                            # A whiteness test tried for the median: the highest frequencies' level
                            # over the patch tail's (~1 for white noise, lower for low-pass noise).
                            "highpass / tail": round(highpass_line(noisy).sigma ** 2 / found.sigma**2, 3),
                        }
                    )
            key = f"{'shifted ' if moved else ''}crops {level}, captures {captures[:1] if moved else captures}"
            t, m = np.array([r["tail"] for r in rows]), np.array([r["median"] for r in rows])
            out[key] = {
                "white planes": len(rows),
                "tail min-max": [float(t.min()), float(t.max())],
                "median min-max": [float(m.min()), float(m.max())],
                "outside 15 %, tail / median": [int((np.abs(t - 1) > 0.15).sum()), int((np.abs(m - 1) > 0.15).sum())],
                "highpass / tail min-max": [
                    min(r["highpass / tail"] for r in rows),
                    max(r["highpass / tail"] for r in rows),
                ],
                "rows": rows,
            }
            print(f"{key:40s} n={len(rows)} tail {t.min():.2f}-{t.max():.2f} median {m.min():.2f}-{m.max():.2f} "
                  f"outside 15 % {out[key]['outside 15 %, tail / median']} highpass/tail "
                  f"{out[key]['highpass / tail min-max']}", flush=True)  # fmt: skip
    return out


def run_timing(repeats: int = 15) -> dict:
    """Milliseconds per estimate of a full 512x512 FMD image (white noise), median of ``repeats``, before and after.

    "before" is block_estimate and patch_noise_variance, what estimate_noise
    did on a white plane before the line came from the highest frequencies.
    """
    plane = read_unit(eval_dir("fmd_test_mix") / "raw" / "Confocal_FISH_1.png")
    out = {}
    for key, rule in (("before", before), ("after", after), ("before, again", before), ("after, again", after)):
        rule(plane)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            rule(plane)
            times.append(time.perf_counter() - start)
        out[key] = round(float(np.median(times)) * 1000, 1)
    print("ms per 512x512 estimate (median):", out, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="+", choices=("spreads", "mix-dev", "mix-heldout", "level", "timing"))
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--level", choices=("tail", "median"), default="tail", help="mix: the white-noise variance of 'after'"
    )
    args = parser.parse_args(argv)
    global LEVEL_RULE
    LEVEL_RULE = args.level
    if args.window != 3:
        import functools

        import napari_mpid.core.noise as noise_module

        noise_module.highpass_line = functools.partial(noise_module.highpass_line, window=args.window)
    result: dict[str, object] = {"constants": {"SIGNAL_DEPENDENT": SIGNAL_DEPENDENT, "CORRELATED": CORRELATED}}
    if args.json and args.json.exists():
        result = json.loads(args.json.read_text())
    start = time.perf_counter()
    if "spreads" in args.what:
        print("development", flush=True)
        result["spreads, development"] = run_spreads([fmd_items("1"), controls(), stack_items("neuron")])
        print("held out", flush=True)
        result["spreads, held out"] = run_spreads([fmd_items("234"), stack_items("pollen"), cset9_items()])
    if "mix-dev" in args.what:
        result["mix alone, development" + ("" if args.level == "tail" else ", median level")] = run_mix(
            [fmd_items("1", ("raw", "avg2", "avg4", "avg8"), ("raw",)), controls(), stack_items("neuron", 5)]
        )
    if "mix-heldout" in args.what:
        result["mix alone, held out" + ("" if args.level == "tail" else ", median level")] = run_mix(
            [fmd_items("234", ("raw",)), fmd_items("2", ("avg2", "avg4", "avg8"), ()), stack_items("pollen", 5)]
        )
    if "level" in args.what:
        result["level, development"] = run_level("1")
        result["level, held out"] = run_level("234")
    if "timing" in args.what:
        result["timing"] = run_timing()
    result["seconds " + "+".join(args.what)] = round(time.perf_counter() - start, 1)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
