"""Why do FMD's wide-field images stay at or below their oracle blur? The mix alone, with each input made true.

Not a test: a measurement for docs/benchmarks.md ("Noise estimate"). The
auto preset's mix alone (:func:`napari_mpid.core.auto.combine` without
candidates, 4 % held out, no network, as benchmarks/mix_nonlinear.py runs
it) is replayed on every wide-field FMDD image with one input at a time
replaced by what gt measures, side by side:

- ``shipped``: the estimate as it is;
- ``variance``: the estimate's noise-level line scaled to the variance
  measured against gt (gain and offset of gt fitted; times 50 / 49, gt being
  the mean of 50 captures including this one);
- ``line``: the noise-level line (gain, offset) fitted to the residual
  against gt instead of the estimate's;
- ``constant``: the measured variance, one level for every pixel;
- ``spectrum``: the noise's whole autocorrelation measured against gt
  (lags up to :data:`REACH`) in every place the mix uses the [s, 1, s]
  model: the blurs' slopes, the Monte-Carlo probe of NL-means' divergence
  (a field with the measured spectrum) and, where NL-means compares
  prefiltered patches, the noise variance its prefilter passes
  (``nonlinear.passed_variance``); the estimated variance;
- ``variance + spectrum``: both;
- ``nlm spectrum``: the measured spectrum in NL-means (probe and prefilter) only;
- ``slopes spectrum``: the measured spectrum in the blurs' slopes only (and with the measured variance);
- ``estimate, constant``: the estimated variance, one level for every pixel;
- ``estimate x 1.1``, ``x 1.2``: the estimate's line scaled up by a constant;
- ``spectrum within 2 px`` (and with the measured variance): the measured
  autocorrelation cut to lags of at most 2 pixels (what a 5x5 model could hold);
- ``calibrated 5-tap model`` (and with the measured variance): no gt: the
  separable autocorrelation of the kernel [t, s, 1, s, t] whose lag-1 and
  lag-2 the shipped calibration reads off the flat blocks (its table fitted
  for the kernels' lag-2 too), in the same three places;
- ``lag-1 measured``: the [s, 1, s] model as shipped, at the lag-1 correlation
  measured against gt instead of the estimated one;
- ``linear`` and ``linear, variance + spectrum``: without NL-means;
- ``oracle weights``: the same candidates (noisy, blurs, NL-means) weighed
  by least squares against gt with an offset: the ceiling of the candidate set
  (free weights also undo the capture's brightness flicker against gt, which
  no blind mix can: a loose ceiling).

Also per image: the share of the residual's variance at periods longer
than :data:`LONG` pixels (which 8x8 blocks cannot see), its correlation with
another capture's (near 0: the capture's own noise, not an error of gt), and
the estimate over the measured variance without that share.

Baselines: the best Gaussian blur over sigma 0.5-4 chosen with gt (oracle blur).

    python benchmarks/widefield_causes.py --captures 1 --json benchmarks/results/widefield_causes_dev.json
    python benchmarks/widefield_causes.py --captures 2 3 4 --json benchmarks/results/widefield_causes_heldout.json
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import torch
from _common import eval_dir, gt_residual, kernel_slope, psnr, read_unit, scaled_noise
from mix_nonlinear import ORACLE, blur, images

import napari_mpid.core.auto.nonlinear as nonlinear
import napari_mpid.core.auto.risk as risk
from napari_mpid.core import noise
from napari_mpid.core.filters import convolve_separable, gaussian_kernel
from napari_mpid.core.noise import NoiseEstimate, estimate_noise

#: Lags of the measured autocorrelation kept (beyond, the periodogram's noise dominates).
REACH = 8
#: Periods (pixels) above which the residual's power is invisible to 8x8 blocks.
LONG = 16
#: The capture whose residual's long periods each capture's is compared with (1 and 2 of
#: WideField_BPAE_B are one file, so neither is compared with the other).
PARTNER = {"1": "3", "2": "4", "3": "4", "4": "3"}


def long_periods(field: np.ndarray) -> np.ndarray:
    """The part of a plane at periods longer than :data:`LONG` pixels (ideal low-pass by FFT)."""
    fy = np.fft.fftfreq(field.shape[0])[:, None]
    fx = np.fft.fftfreq(field.shape[1])[None, :]
    return np.real(np.fft.ifft2(np.fft.fft2(field) * (fy**2 + fx**2 <= LONG**-2)))


def autocorrelation(field: np.ndarray, reach: int = REACH) -> np.ndarray:
    """``(2 reach + 1)^2`` autocorrelation of a zero-mean field (circular, by FFT), lag (0, 0) = 1."""
    f = field - field.mean()
    power = np.abs(np.fft.fft2(f)) ** 2
    acf = np.real(np.fft.ifft2(power))
    acf = np.fft.fftshift(acf)
    cy, cx = np.array(acf.shape) // 2
    out = acf[cy - reach : cy + reach + 1, cx - reach : cx + reach + 1]
    return out / out[reach, reach]


def field_from(acf: np.ndarray, shape: tuple[int, int], seed: int) -> np.ndarray:
    """Unit-variance Gaussian field of ``shape`` whose autocorrelation is ``acf`` (power spectrum clipped at 0)."""
    reach = acf.shape[0] // 2
    embedded = np.zeros(shape)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            embedded[dy % shape[0], dx % shape[1]] = acf[dy + reach, dx + reach]
    spectrum = np.maximum(np.real(np.fft.fft2(embedded)), 0.0)
    white = np.random.default_rng(seed).standard_normal(shape)
    out = np.real(np.fft.ifft2(np.fft.fft2(white) * np.sqrt(spectrum)))
    return out / out.std()


def pure_blocks(field: np.ndarray) -> dict[str, object]:
    """What the blocks see of the noise alone (the residual against gt divided by its line's root).

    The share of the field's variance the quietest quarter of the 8x8 blocks
    keeps after the detrend, the blocks' lag-1 and lag-2 residual
    correlations (lags 1-3), and the share the calibration assigns to lags 1-2.
    """
    _, residual = noise._detrend(noise._blocks(field))
    variances = (residual**2).sum(axis=(1, 2)) / (noise.BLOCK * noise.BLOCK - noise._TERMS)
    keep = np.argsort(variances)[: len(variances) // 4]
    lags = lags3(residual[keep])
    return {
        "pure residual: blocks keep": float(variances[keep].mean() / np.mean(field**2)),
        "pure residual: block lags 1-3": [round(v, 3) for v in lags],
        "pure residual: calibration says": noise._calibration(*lags[:2])[1],
    }


def block_lags(plane: np.ndarray) -> tuple[float, ...]:
    """Lags 1-3 of the residuals of the blocks :func:`estimate_noise` takes as flat (its selection, replayed)."""
    means, residual = noise._detrend(noise._blocks(plane))
    return lags3(residual[noise._flattest(means, (residual**2).sum(axis=(1, 2)))])


def lags3(r: np.ndarray) -> tuple[float, ...]:
    """Lag-1 to lag-3 correlations of block residuals ``r``, each the mean of the horizontal and vertical one."""
    norm = float((r**2).sum())
    return tuple(
        float((r[:, :, d:] * r[:, :, :-d]).sum() + (r[:, d:, :] * r[:, :-d, :]).sum()) / (2 * norm) for d in (1, 2, 3)
    )


def passed_with(acf: np.ndarray, kernel: np.ndarray) -> float:
    """Variance the separable blur ``kernel`` leaves of unit noise with the autocorrelation ``acf``."""
    k = np.asarray(kernel, dtype=np.float64)
    own = np.correlate(k, k, "full")  # the 1-D kernel's autocorrelation, lags -(L-1)..L-1
    r, reach = len(own) // 2, acf.shape[0] // 2
    m = min(r, reach)
    c = own[r - m : r + m + 1]
    return float(c @ acf[reach - m : reach + m + 1, reach - m : reach + m + 1] @ c)


@functools.cache
def lag2_fit() -> tuple[np.ndarray, np.ndarray, float, float]:
    """The shipped calibration's table, fitted for the true lag-2 of its kernels [t, s, 1, s, t] (cubic, as shipped).

    Returns the coefficients over ``noise._terms``, the measured lags' box,
    and the table's true lag-2 range.
    """
    measured1, measured2, _, _ = noise._calibration_table()
    kernels = [(s, t) for s, t in itertools.product(noise._STRENGTHS, noise._REACHES) if not s > noise._FOLD + t + 1e-9]
    true2 = np.array([(2 * t + s * s) / (1 + 2 * s * s + 2 * t * t) for s, t in kernels])
    design = np.stack([noise._terms(a, b) for a, b in zip(measured1, measured2)])
    coefficients = np.linalg.lstsq(design, true2, rcond=None)[0]
    box = np.array([[measured1.min(), measured2.min()], [measured1.max(), measured2.max()]])
    return coefficients, box, float(true2.min()), float(true2.max())


def modelled_acf(plane: np.ndarray) -> tuple[np.ndarray, float, float]:
    """A blind autocorrelation: the kernel [t, s, 1, s, t] whose lag-1 and lag-2 the calibration reads off the blocks.

    The calibration turns the flat blocks' measured lags 1-2 into the
    noise's true lag-1 (as shipped) and, fitted the same way, its lag-2; the
    kernel with those two is found on a grid. Returns the separable
    ``(2 REACH + 1)^2`` autocorrelation and the two lags.
    """
    coefficients, box, low, high = lag2_fit()
    lag1, lag2 = block_lags(plane)[:2]
    lag1, lag2 = float(np.clip(lag1, box[0, 0], box[1, 0])), float(np.clip(lag2, box[0, 1], box[1, 1]))
    true1 = noise._calibration(lag1, lag2)[0]
    true2 = float(np.clip(noise._terms(lag1, lag2) @ coefficients, low, high))
    # On the table's own domain: beyond its fold two kernels share lags 1-2.
    s, t = np.meshgrid(np.linspace(0.0, 0.6, 121), np.linspace(-0.1, 0.3, 81), indexing="ij")
    norm = 1 + 2 * s * s + 2 * t * t
    error = ((2 * s + 2 * s * t) / norm - true1) ** 2 + ((2 * t + s * s) / norm - true2) ** 2
    error[s > noise._FOLD + t + 1e-9] = np.inf
    i = np.unravel_index(np.argmin(error), error.shape)
    kernel = np.array([t[i], s[i], 1.0, s[i], t[i]])
    one = np.correlate(kernel, kernel, "full") / float(kernel @ kernel)  # lags -4..4
    a = np.zeros(2 * REACH + 1)
    a[REACH - 4 : REACH + 5] = one
    return np.outer(a, a), true1, true2


def oracle_weights(noisy: np.ndarray, clean: np.ndarray, noise: NoiseEstimate, variance: float) -> float:
    """PSNR of the mix's candidates weighed by least squares against gt (with an offset)."""
    extra = nonlinear.candidates(noisy[None], noise, variance)
    columns = [noisy, *(convolve_separable(noisy, gaussian_kernel(s)) for s in risk.COMBINE_SIGMAS)]
    columns += [c[0] for c, _ in extra.values()]
    design = np.stack([c.ravel() for c in columns] + [np.ones(noisy.size)], axis=1)
    coef = np.linalg.lstsq(design, clean.ravel(), rcond=None)[0]
    return psnr((design @ coef).reshape(noisy.shape), clean)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--captures", nargs="+", default=["1"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    shipped_slope, shipped_field = risk.blur_slope, nonlinear._unit_field
    shipped_passed = getattr(nonlinear, "passed_variance", None)
    rows = []
    for name, noisy, clean, _, _ in images("fmdd", args.captures):
        if not name.startswith("WideField"):
            continue
        residual, fitted = gt_residual(noisy, clean)
        capture = name.rsplit("_", 1)[1].split(".")[0]
        partner = name.rsplit("_", 1)[0] + f"_{PARTNER[capture]}.png"
        root = eval_dir("fmd_test_mix")
        slow = long_periods(residual)
        other = long_periods(gt_residual(read_unit(root / "raw" / partner), read_unit(root / "gt" / partner))[0])
        inflate = 50 / 49
        measured = float(np.mean(residual**2)) * inflate
        gain, offset = np.polyfit(fitted.ravel(), (residual**2).ravel(), 1) * inflate
        line = np.maximum(gain * fitted + offset, 1e-12)
        acf = autocorrelation(residual / np.sqrt(line))
        estimate = estimate_noise(noisy)
        true_variance = scaled_noise(estimate, measured / estimate.sigma**2)
        true_line = dataclasses.replace(
            estimate, sigma=float(np.sqrt(measured)), gain=float(gain), offset=float(offset), floor=0.0
        )
        measured_lag1 = dataclasses.replace(
            estimate, correlation=float(acf[REACH, REACH + 1] + acf[REACH + 1, REACH]) / 2
        )
        flat = dataclasses.replace(estimate, gain=0.0, offset=estimate.sigma**2, floor=0.0)
        constant = dataclasses.replace(estimate, sigma=float(np.sqrt(measured)), gain=0.0, offset=measured, floor=0.0)

        near = acf.copy()  # the measured autocorrelation within two pixels (a 5x5 model's reach)
        ring = np.abs(np.arange(-REACH, REACH + 1))
        near[np.maximum.outer(ring, ring) > 2] = 0.0
        model, model1, model2 = modelled_acf(noisy)
        spectra = {True: acf, "near": near, "model": model}

        def blur_spectrum(sigma: float, _rho: float, a: np.ndarray = acf) -> float:
            return kernel_slope(a, sigma)

        def passed_spectrum(kernel: np.ndarray, _rho: float, a: np.ndarray = acf) -> float:
            return passed_with(a, kernel)

        def field_spectrum(shape: tuple[int, int], _rho: float, seed: int, a: np.ndarray = acf) -> np.ndarray:
            return field_from(a, shape, seed)

        variants = {
            "shipped": (estimate, False, False, nonlinear.FAMILIES),
            "variance": (true_variance, False, False, nonlinear.FAMILIES),
            "line": (true_line, False, False, nonlinear.FAMILIES),
            "constant": (constant, False, False, nonlinear.FAMILIES),
            "spectrum": (estimate, True, True, nonlinear.FAMILIES),
            "variance + spectrum": (true_variance, True, True, nonlinear.FAMILIES),
            "nlm spectrum": (estimate, False, True, nonlinear.FAMILIES),
            "slopes spectrum": (estimate, True, False, nonlinear.FAMILIES),
            "variance + slopes spectrum": (true_variance, True, False, nonlinear.FAMILIES),
            "estimate, constant": (flat, False, False, nonlinear.FAMILIES),
            "estimate x 1.1": (scaled_noise(estimate, 1.1), False, False, nonlinear.FAMILIES),
            "estimate x 1.2": (scaled_noise(estimate, 1.2), False, False, nonlinear.FAMILIES),
            "spectrum within 2 px": (estimate, "near", "near", nonlinear.FAMILIES),
            "variance + spectrum within 2 px": (true_variance, "near", "near", nonlinear.FAMILIES),
            "calibrated 5-tap model": (estimate, "model", "model", nonlinear.FAMILIES),
            "variance + calibrated 5-tap model": (true_variance, "model", "model", nonlinear.FAMILIES),
            "lag-1 measured": (measured_lag1, False, False, nonlinear.FAMILIES),
            "linear": (estimate, False, False, ()),
            "linear, variance + spectrum": (true_variance, True, False, ()),
        }
        held = np.random.default_rng(0).random(noisy.shape) < 0.04
        row: dict = {
            "image": name,
            "oracle blur": max(psnr(blur(noisy, s), clean) for s in ORACLE),
            "oracle sigma": max(ORACLE, key=lambda s: psnr(blur(noisy, s), clean)),
            "variance / measured": estimate.sigma**2 / measured,
            "lag-1 estimated": estimate.correlation,
            "long-period share": float(np.mean(slow**2) / np.mean(residual**2)),
            "long-period correlation with capture " + PARTNER[capture]: float(
                np.sum(slow * other) / np.sqrt(np.sum(slow**2) * np.sum(other**2))
            ),
            "variance / measured below long periods": estimate.sigma**2
            / (measured * (1 - float(np.mean(slow**2) / np.mean(residual**2)))),
            **pure_blocks(residual / np.sqrt(line)),
            "5-tap model lags 1-2": [round(model1, 3), round(model2, 3)],
            "lags 1-4 measured": [
                round(float(acf[REACH, REACH + d] + acf[REACH + d, REACH]) / 2, 3) for d in range(1, 5)
            ],
        }
        for label, (given, slopes, field, families) in variants.items():
            a_slopes, a_field = spectra.get(slopes), spectra.get(field)
            risk.blur_slope = functools.partial(blur_spectrum, a=a_slopes) if slopes else shipped_slope
            nonlinear._unit_field = functools.partial(field_spectrum, a=a_field) if field else shipped_field
            if shipped_passed is not None:
                nonlinear.passed_variance = functools.partial(passed_spectrum, a=a_field) if field else shipped_passed
            try:
                mixed, how = risk.combine(noisy[None], {}, held, given, nonlinear=families)
            finally:
                risk.blur_slope, nonlinear._unit_field = shipped_slope, shipped_field
                if shipped_passed is not None:
                    nonlinear.passed_variance = shipped_passed
            row[label] = psnr(mixed[0], clean)
            row[f"{label} weights"] = {k: round(v, 3) for k, v in how.weights.items() if abs(v) > 1e-4}
        row["oracle weights"] = oracle_weights(noisy, clean, estimate, estimate.sigma**2)
        row["block lags 1-3 (noisy plane)"] = [round(v, 3) for v in block_lags(noisy)]
        rows.append(row)
        shown = "  ".join(f"{k} {row[k]:.2f}" for k in [*variants, "oracle weights"])
        print(
            f"{name:28s} ratio {row['variance / measured']:.2f} (below long periods "
            f"{row['variance / measured below long periods']:.2f}; long-period share {row['long-period share']:.3f}, "
            f"correlation with capture {PARTNER[capture]} {row['long-period correlation with capture ' + PARTNER[capture]]:+.2f}) "
            f"acf {row['lags 1-4 measured']} pure residual: blocks keep {row['pure residual: blocks keep']:.3f}, "
            f"calibration says {row['pure residual: calibration says']:.3f} "
            f"oracle blur {row['oracle blur']:.2f} (s {row['oracle sigma']})  {shown}",
            flush=True,
        )
    keys = ["oracle blur", *variants, "oracle weights"]
    summary = {k: round(float(np.mean([r[k] for r in rows])), 3) for k in keys}
    summary["margin over oracle blur"] = {
        k: {r["image"]: round(r[k] - r["oracle blur"], 3) for r in rows} for k in keys[1:]
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        record = {
            "what": f"wide-field FMDD, mix alone with each input replaced by gt's, captures {args.captures}",
            "command": "python benchmarks/widefield_causes.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "summary": summary,
            "rows": rows,
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
