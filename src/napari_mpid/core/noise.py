"""Estimating the noise of a single plane from the plane itself.

Fluorescence noise is Poisson-Gaussian (shot noise grows with the signal,
read noise does not) and, with many cameras, spatially correlated (FMD's
wide-field images: lag-1 correlation ~0.6). :func:`estimate_noise` measures
both without a clean reference:

1. The plane is cut into 8x8 blocks. In every block a quadratic surface is
   fitted and removed, which takes out smooth signal.
2. Blocks whose residual variance is in the lowest quarter of their
   intensity bin are taken as "flat": there, what is left is noise.
3. A line ``variance = gain * mean + offset`` is fitted to those blocks
   (the Poisson-Gaussian noise-level function); the plane's noise level is
   the root of the mean predicted variance over all its pixels.
4. The lag-1 and lag-2 correlations are measured on the residuals of the
   same flat blocks. Detrending and the choice of the quietest blocks take
   a share of the noise's variance and shorten its correlation, the more
   so the farther the correlation reaches: a calibration simulated on
   noise of known correlation (white noise blurred by [t, s, 1, s, t] along
   each axis) turns the two measured correlations into the noise's true
   lag-1 correlation and the share of its variance that the blocks kept,
   which step 3 divides out. The lag-1 correlation alone was not enough:
   noise whose correlation reaches two pixels (FMD wide-field B and R:
   lag-2 0.21-0.25 at lag-1 0.61-0.64) read 20 % low with a one-parameter
   calibration on [s, 1, s] (lag-2 0.12 at lag-1 0.6).
5. Texture that a quadratic does not take out passes for noise in step 2 and
   for correlation in step 4; on weakly noisy, densely textured planes the
   level came out up to 1.8x too high (FMD confocal, mean of 8 captures).
   The covariance of small patches separates the two: structure occupies a
   few of its eigen-directions, pixel-independent noise adds its variance
   to all of them, so the smallest eigenvalues measure the noise (the idea
   of Chen, Zhu & Heng, ICCV 2015). Correlated noise leaves far less than
   its variance there (lag-1 0.37: 59 %, 0.51: 20 %, 0.61: 12 %, 0.70: 1 %,
   simulated with :func:`correlated_noise`, benchmarks/noise_estimate.py);
   where the patches hold more than
   :data:`SPECTRAL_FLOOR` of the blocks' level, the noise is taken as
   pixel-independent, with the patch variance. The blocks' level is no
   bound there: it can read low as well as high (the quietest quarter of
   an intensity bin is calibrated on noise of one level, and shot noise
   varies within a bin; docs/benchmarks.md, "Noise estimate", has the
   figures on FMD). One plane cannot tell weakly correlated noise from
   texture: on FMD confocal crops the blocks measure a lag-1 of 0.07-0.31
   in single captures and 0.27-0.58 in means of 8, which only texture
   explains.
6. On pixel-independent noise the line's shape (gain, offset, floor) comes
   from the highest frequencies, not from the blocks (:func:`highpass_line`):
   texture sits in the bright blocks more than in the dark ones, so the
   quietest quarter of a bright bin still holds some, and the blocks' line
   rose with the intensity under noise of one level on textured planes. The
   line is rescaled to the patch variance, so only its shape changes.

Numpy only; 20-30 ms for a 512x512 plane (benchmarks/noise_estimate.py),
after the calibration is simulated once per process (0.6-1 s); step 6 adds
about a fifth on white-noise planes (benchmarks/noise_texture.py timing).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "NoiseEstimate",
    "block_estimate",
    "correlation_tap",
    "estimate_noise",
    "estimate_noise_channels",
    "highpass_line",
    "noise_autocorrelation",
    "patch_noise_variance",
]

BLOCK = 8
#: Terms of the quadratic surface removed from every block.
_TERMS = 6
#: Fraction of the blocks of an intensity bin taken as flat.
FLAT_FRACTION = 0.25
INTENSITY_BINS = 8
#: Side of the patches whose covariance measures the pixel-independent noise.
PATCH = 6
#: Patches entering that covariance at most (evenly strided on bigger planes).
MAX_PATCHES = 1 << 16
#: Correlated noise of lag-1 >~ 0.55 leaves less than this share of its variance in the
#: patches' smallest eigenvalues, and is measured by the blocks alone; a plane whose
#: patches hold more is taken to have pixel-independent noise. FMD wide-field: 0.03-0.11;
#: the lowest white-noise planes are densely textured, where the blocks' level holds
#: texture: FMD confocal BPAE_G means of 16 (128x128 crops) 0.17-0.20, means of 8
#: 0.30, the tests' filaments under noise of 0.005: 0.19 (benchmarks/noise_correlated.py).
#: Noise reaching two pixels can leave as much (kernel [0.08, 0.38, 1, 0.38, 0.08]:
#: 0.18-0.21) and is then taken for white noise: one plane does not tell them apart.
SPECTRAL_FLOOR = 0.16


@dataclass(frozen=True)
class NoiseEstimate:
    """What :func:`estimate_noise` found.

    Attributes
    ----------
    sigma : float
        Root-mean-square noise over the plane (in the plane's units).
    correlation : float
        Lag-1 correlation of the noise between neighbouring pixels (mean of
        the horizontal and vertical ones): ~0 for pixel-independent noise.
    gain, offset : float
        The noise-level function ``variance = gain * intensity + offset``.
    floor : float
        Noise variance measured in the darkest flat blocks: the line above
        is never taken below it (see :meth:`variance`).
    autocorrelation : ndarray or None
        The noise's measured autocorrelation, odd-sided and 1 at its centre,
        where a calibration gave it (:mod:`napari_mpid.core.noise_profile`);
        None for an estimate from the plane alone, whose correlation
        follows the [s, 1, s] model (:func:`noise_autocorrelation`).
    """

    sigma: float
    correlation: float
    gain: float
    offset: float
    floor: float = 0.0
    autocorrelation: np.ndarray | None = field(default=None, compare=False, repr=False)

    def variance(self, intensity):
        """Noise variance at ``intensity`` (scalar or array): the noise-level line, at least :attr:`floor`."""
        return np.maximum(self.gain * np.asarray(intensity, dtype=np.float64) + self.offset, self.floor)

    def averaged(self, count: float) -> NoiseEstimate:
        """The noise of the mean of ``count`` exposures with this noise, independent: the line over ``count``."""
        k = max(float(count), 1.0)
        return NoiseEstimate(
            self.sigma / np.sqrt(k),
            self.correlation,
            self.gain / k,
            self.offset / k,
            self.floor / k,
            autocorrelation=self.autocorrelation,
        )

    def as_dict(self) -> dict[str, float]:
        """The scalar fields, rounded (the autocorrelation is left out)."""
        return {k: round(float(v), 6) for k, v in vars(self).items() if k != "autocorrelation"}


def _blocks(plane: np.ndarray) -> np.ndarray:
    h, w = (plane.shape[0] // BLOCK) * BLOCK, (plane.shape[1] // BLOCK) * BLOCK
    blocks = plane[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).transpose(0, 2, 1, 3)
    return blocks.reshape(-1, BLOCK, BLOCK)


def _quadratic_terms(size: int) -> np.ndarray:
    """The ``(size * size, 6)`` design of a quadratic surface over a ``size`` x ``size`` block (centred coordinates)."""
    c = (np.arange(size, dtype=np.float64) - (size - 1) / 2) / size
    y, x = np.meshgrid(c, c, indexing="ij")
    return np.stack([np.ones(size * size), y.ravel(), x.ravel(), (y * y).ravel(), (x * y).ravel(), (x * x).ravel()], 1)


def _flattest(means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """Indices of the blocks taken as flat: the :data:`FLAT_FRACTION` quietest of every intensity bin, sorted."""
    edges = np.quantile(means, np.linspace(0, 1, INTENSITY_BINS + 1))
    chosen = []
    for lo, hi in itertools.pairwise(edges):
        in_bin = np.flatnonzero((means >= lo) & (means <= hi))
        if len(in_bin) == 0:
            continue
        keep = max(1, int(len(in_bin) * FLAT_FRACTION))
        chosen.extend(in_bin[np.argsort(variances[in_bin])[:keep]])
    return np.unique(np.asarray(chosen))


def _detrend(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-block mean and the residual after removing the best quadratic surface.

    A quadratic (6 terms) rather than a plane takes the curvature of smooth
    signal out too, which would otherwise pass for correlated noise in weakly
    noisy planes (FMD confocal at avg4: estimated lag-1 0.27-0.48 with planes,
    0.15-0.48 with quadratics; wide-field stays at 0.58-0.64).
    """
    design = _quadratic_terms(BLOCK)
    flat = blocks.reshape(len(blocks), -1)
    coef, *_ = np.linalg.lstsq(design, flat.T, rcond=None)
    residual = flat - (design @ coef).T
    return flat.mean(axis=1), residual.reshape(blocks.shape)


def estimate_noise(plane: np.ndarray) -> NoiseEstimate:
    """Noise level and correlation of one 2D plane (any units).

    Parameters
    ----------
    plane : ndarray
        ``(H, W)``, at least 32x32.

    Returns
    -------
    NoiseEstimate
    """
    data = np.asarray(plane, dtype=np.float64)
    if data.ndim != 2 or min(data.shape) < 4 * BLOCK:
        raise ValueError(f"need a 2D plane of at least {4 * BLOCK}x{4 * BLOCK} pixels, got {data.shape}")
    blocks = block_estimate(data)
    correlation, level = blocks.correlation, blocks.sigma**2
    patches = patch_noise_variance(data)
    if patches > SPECTRAL_FLOOR * level:
        # Correlated noise strong enough to matter leaves less than this in the
        # patches: the noise is (close to) white, and the blocks' correlation
        # and part of their variance were texture. Texture also sits in the
        # brighter blocks more than in the dark ones and would tilt their line:
        # the line's shape comes from the highest frequencies instead.
        line = highpass_line(data)
        if line is not None and line.sigma > 0:
            blocks, level = line, line.sigma**2
        correlation, total = 0.0, patches
    else:
        total = level
    scale = total / level if level > 0 else 1.0
    return NoiseEstimate(
        float(np.sqrt(total if level > 0 else level)),
        float(correlation),
        float(blocks.gain * scale),
        float(blocks.offset * scale),
        float(blocks.floor * scale),
    )


def highpass_line(data: np.ndarray, window: int = 3) -> NoiseEstimate | None:
    """The noise-level line of pixel-independent noise from a plane's highest frequencies, up to a common scale.

    Every pixel's response to the separable second difference
    ``[1, -2, 1] x [1, -2, 1] / 6`` (unit gain on white noise) is squared
    and averaged per intensity bin (:data:`INTENSITY_BINS` quantiles of the
    3x3 local mean, which the response does not correlate with: its weights
    sum to zero); a line is fitted to the bins' means. The operator passes
    mostly the corner of the spectrum, where white noise keeps its power and
    an image blurred by a microscope's optics keeps little: the quietest
    blocks of a bright, textured bin still hold texture that a quadratic
    does not follow, and tilt the blocks' line. Noise that is low-pass
    (resampled planes) loses the same share at every intensity, so the
    shape stays; :func:`estimate_noise` rescales the line to the patch
    variance. ``None`` when the bins cannot carry a line (a flat plane).

    ``window`` (odd) is the side of the local mean that bins the pixels; a
    wider one dilutes the slope less with the noise of the mean, a narrower
    one mixes less structure into it (benchmarks/noise_texture.py
    ``--window``).

    ``data`` is a float64 ``(H, W)`` plane; returns gain, offset and floor
    in its units (``sigma``: the root of the line's mean over an even
    sample of the plane's pixels).
    """
    # As many pixels as patches in patch_noise_variance, evenly strided: the bins' means
    # are then within a few per cent, at a fraction of the time on big planes.
    step = max(1, int(np.ceil(np.sqrt((data.shape[0] - 2) * (data.shape[1] - 2) / MAX_PATCHES))))
    near = [data[k : data.shape[0] - 2 + k : step] for k in range(3)]
    rows = near[0] - 2 * near[1] + near[2]
    sums = near[0] + near[1] + near[2]
    width = data.shape[1] - 2
    column = [slice(k, width + k, step) for k in range(3)]
    response = ((rows[:, column[0]] - 2 * rows[:, column[1]] + rows[:, column[2]]) / 6).ravel() ** 2
    if window == 3:
        local = ((sums[:, column[0]] + sums[:, column[1]] + sums[:, column[2]]) / 9).ravel()
    else:
        # Box means by summed-area table, centred on the response's pixels; the edges repeat.
        total = np.cumsum(np.cumsum(np.pad(data, ((1, 0), (1, 0))), 0), 1)
        box = total[window:, window:] - total[:-window, window:] - total[window:, :-window] + total[:-window, :-window]
        box = np.pad(box / window**2, window // 2 - 1, mode="edge")
        local = box[::step, ::step][: rows.shape[0], : len(range(0, width, step))].ravel()
    edges = np.quantile(local, np.linspace(0, 1, INTENSITY_BINS + 1))
    index = np.clip(np.searchsorted(edges, local, side="right") - 1, 0, INTENSITY_BINS - 1)
    count = np.bincount(index, minlength=INTENSITY_BINS)
    held = count > 0
    m = np.bincount(index, local, INTENSITY_BINS)[held] / count[held]
    v = np.bincount(index, response, INTENSITY_BINS)[held] / count[held]
    if v.max() <= 0:
        return None
    # A bin's mean square has a standard error proportional to its level; dark bins of
    # clipped planes can be ~0 and must not take all the weight.
    weight = 1.0 / np.maximum(v, 1e-3 * v.max())
    if np.ptp(m) > 0 and len(m) >= 2:
        gain, offset = np.polyfit(m, v, 1, w=weight)
    else:
        gain, offset = 0.0, float(np.mean(v))
    if gain < 0:  # noise cannot shrink with intensity: fall back to a constant level
        gain, offset = 0.0, float(np.average(v, weights=count[held]))
    floor = float(v[0])  # the darkest bin: the line is not taken below what it measures
    # The line's mean over the plane, on the same strided pixels (only its ratio to the
    # patch variance is used).
    level = float(np.maximum(gain * data[::step, ::step] + offset, floor).mean())
    return NoiseEstimate(float(np.sqrt(level)), 0.0, float(gain), float(offset), floor)


def block_estimate(data: np.ndarray) -> NoiseEstimate:
    """Steps 1-4 of :func:`estimate_noise`: the noise-level line and correlation of the flattest blocks alone.

    ``data`` is a float64 ``(H, W)`` plane of at least 32x32 pixels.
    """
    means, residual = _detrend(_blocks(data))
    # Removing a 6-parameter surface from 64 values leaves 58 degrees of freedom.
    variances = (residual**2).sum(axis=(1, 2)) / (BLOCK * BLOCK - _TERMS)
    chosen = _flattest(means, variances)
    # Residual statistics of the chosen blocks are biased twice: the lowest
    # quarter of a bin's variances underestimates the noise variance even
    # where every block is pure noise, and detrending takes a share of the
    # variance and shortens correlations. Both biases depend on how far the
    # correlation reaches; they are read off a table made by simulating the
    # same procedure on noise of known correlation.
    correlation, bias = _calibration(*_lags(residual[chosen]))
    v, m = variances[chosen] / bias, means[chosen]
    if np.ptp(m) > 0 and len(chosen) >= 4:
        gain, offset = np.polyfit(m, v, 1, w=1.0 / np.maximum(v, 1e-12))
    else:
        gain, offset = 0.0, float(np.median(v))
    if gain < 0:  # noise cannot shrink with intensity: fall back to a constant level
        gain, offset = 0.0, float(np.median(v))
    # The line can dip below zero in the dark; the darkest flat blocks measure the floor.
    floor = float(np.percentile(v[m <= np.percentile(m, 25)], 25)) if len(v) >= 4 else float(np.min(v))
    level = float(np.maximum(gain * data + offset, floor).mean())
    return NoiseEstimate(float(np.sqrt(level)), float(correlation), float(gain), float(offset), floor)


def patch_noise_variance(plane: np.ndarray, size: int = PATCH) -> float:
    """Variance of the pixel-independent noise of a plane, from the spectrum of its patches' covariance.

    The covariance of all ``size`` x ``size`` patches has the plane's
    structure in a few large eigenvalues; white noise of (mean) variance v
    adds v to every eigenvalue. The largest set of smallest eigenvalues
    whose mean does not exceed their median is taken as noise alone, and
    their mean returned (Chen, Zhu & Heng, "An efficient statistical method
    for image noise level estimation", ICCV 2015, in our words).
    Heteroscedastic (Poisson-Gaussian) noise gives its mean variance.
    Spatially correlated noise gives less than its variance: see
    :func:`estimate_noise`.
    """
    data = np.asarray(plane, dtype=np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(data, (size, size))
    rows, cols = windows.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(rows * cols / MAX_PATCHES))))
    vectors = windows[::step, ::step].reshape(-1, size * size)
    vectors = vectors - vectors.mean(axis=0)
    eigenvalues = np.linalg.eigvalsh(vectors.T @ vectors / len(vectors))[::-1]
    for start in range(len(eigenvalues)):
        tail = eigenvalues[start:]
        if tail.mean() <= np.median(tail):
            return float(max(tail.mean(), 0.0))
    return float(max(eigenvalues[-1], 0.0))


def _lags(residual: np.ndarray) -> tuple[float, float]:
    """Lag-1 and lag-2 correlations of block residuals, each the mean of the horizontal and vertical one."""
    norm = float((residual**2).sum())
    if norm <= 0:
        return 0.0, 0.0
    found = []
    for d in (1, 2):
        horizontal = float((residual[:, :, d:] * residual[:, :, :-d]).sum())
        vertical = float((residual[:, d:, :] * residual[:, :-d, :]).sum())
        found.append((horizontal + vertical) / (2 * norm))
    return found[0], found[1]


def correlated_noise(shape: tuple[int, ...], strength: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance noise blurred by the separable kernel [s, 1, s] (s = ``strength``, 0 = white; 0.6: lag-1 ~0.7)."""
    noise = rng.standard_normal(shape)
    if strength > 0:
        k = np.array([strength, 1.0, strength])
        for axis in (-2, -1):
            noise = sum(w * np.roll(noise, shift, axis=axis) for w, shift in zip(k, (-1, 0, 1)))
    return noise / noise.std()


#: The correlated noise the calibration simulates: white noise blurred along each axis by
#: the kernel [t, s, 1, s, t] for s in ``_STRENGTHS`` and t in ``_REACHES`` (t < 0: lag-2
#: below what [s, 1, s] gives). Beyond s = ``_FOLD`` + t the measured lag-1 stops rising
#: with s and two kernels would measure alike: those are left out.
_STRENGTHS = np.linspace(0.0, 0.6, 13)
_REACHES = np.linspace(-0.1, 0.3, 9)
_FOLD = 0.55
#: Degree of the polynomials in the measured lag-1 and lag-2 that invert the calibration
#: (largest error over the table: 2 % of the variance share, 0.006 in lag-1).
_DEGREE = 3
#: Spread of the noise variance from block to block in the calibration's simulation
#: (standard deviation of its log). A real plane's noise level varies between blocks of
#: one intensity bin (shot noise over the bin's range, camera noise that is not
#: stationary), so its quietest quarter is quieter than stationary noise's: FMD
#: wide-field noise (capture 1, measured against gt) keeps 0.61-0.63 of the mean block
#: variance there, stationary Gaussian noise of the same spectrum 0.66-0.67; this spread
#: reproduces the ratio (benchmarks/noise_correlated.py).
LEVEL_SPREAD = 0.18


@functools.cache
def _calibration_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(measured residual lag-1, lag-2, true lag-1, selection bias of the variance) per simulated kernel.

    Simulated once with a fixed seed: 4000 blocks of unit-variance noise
    per kernel [t, s, 1, s, t], each scaled by a random level
    (:data:`LEVEL_SPREAD`), detrended and selected as :func:`estimate_noise`
    does. The same white noise serves every kernel, so the table is smooth
    in s and t. A detrended block is linear in the 9 products of the
    kernel's weights (1, s, t along each axis), so its 9 parts are detrended
    once and each kernel costs only quadratic forms of them: the 111 kernels
    take 0.6-1 s on one busy core.
    """
    n = 4000
    rng = np.random.default_rng(0)
    white = rng.standard_normal((n, BLOCK + 4, BLOCK + 4))
    level = np.exp(LEVEL_SPREAD * rng.standard_normal(n) - LEVEL_SPREAD**2 / 2)  # mean 1
    groups = ((0,), (-1, 1), (-2, 2))  # the taps of weight 1, s and t

    def taps(x: np.ndarray, axis: int, offsets: tuple[int, ...]) -> np.ndarray:
        return sum(np.take(x, range(2 + o, 2 + o + BLOCK), axis=axis) for o in offsets)

    rows = [taps(white, 1, g) for g in groups]
    parts = np.stack([taps(r, 2, g) for r in rows for g in groups], axis=1).reshape(-1, BLOCK, BLOCK)
    _, residual = _detrend(parts)
    residual = residual.reshape(n, len(groups) ** 2, BLOCK, BLOCK)
    gram = np.einsum("bkyx,blyx->bkl", residual, residual) * level[:, None, None]
    lagged = [
        (
            np.einsum("bkyx,blyx->bkl", residual[..., d:], residual[..., :-d])
            + np.einsum("bkyx,blyx->bkl", residual[:, :, d:], residual[:, :, :-d])
        )
        * level[:, None, None]
        for d in (1, 2)
    ]
    keep_count = int(n * FLAT_FRACTION)
    rows_out = []
    for s, t in itertools.product(_STRENGTHS, _REACHES):
        if s > _FOLD + t + 1e-9:
            continue
        norm = 1 + 2 * s * s + 2 * t * t  # the kernel's squared norm: unit-variance noise
        weights = np.outer([1.0, s, t], [1.0, s, t]).ravel() / norm
        squares = np.einsum("bkl,k,l->b", gram, weights, weights)
        keep = np.argpartition(squares, keep_count)[:keep_count]
        total = squares[keep].sum()
        lag1, lag2 = (float(weights @ m[keep].sum(axis=0) @ weights) / (2 * total) for m in lagged)
        true = (2 * s + 2 * s * t) / norm
        rows_out.append((lag1, lag2, true, total / keep_count / (BLOCK * BLOCK - _TERMS)))
    measured1, measured2, true, bias = np.array(rows_out).T
    return measured1, measured2, true, bias


def _terms(lag1: float, lag2: float) -> np.ndarray:
    """Monomials of the measured lag-1 and lag-2 up to degree :data:`_DEGREE`."""
    return np.array([lag1**i * lag2**j for i in range(_DEGREE + 1) for j in range(_DEGREE + 1 - i)])


@functools.cache
def _calibration_fit() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Polynomials (in the measured lag-1 and lag-2) of the true lag-1 and the log variance bias, and their domain.

    A least-squares fit over the table: smooth between its kernels, where
    looking up the nearest ones would step.
    """
    measured1, measured2, true, bias = _calibration_table()
    design = np.stack([_terms(a, b) for a, b in zip(measured1, measured2)])
    coefficients, *_ = np.linalg.lstsq(design, np.stack([true, np.log(bias)], axis=1), rcond=None)
    box = np.array([[measured1.min(), measured2.min()], [measured1.max(), measured2.max()]])
    return coefficients[:, 0], coefficients[:, 1], box


def _calibration(lag1: float, lag2: float) -> tuple[float, float]:
    """True lag-1 correlation and variance bias for the measured residual lag-1 and lag-2 correlations.

    Measurements outside the table's range (texture reads as any
    correlation) are brought to its edge, and the results kept within the
    table's values.
    """
    true_fit, bias_fit, box = _calibration_fit()
    _, _, table_true, table_bias = _calibration_table()
    terms = _terms(float(np.clip(lag1, box[0, 0], box[1, 0])), float(np.clip(lag2, box[0, 1], box[1, 1])))
    true = float(np.clip(terms @ true_fit, 0.0, table_true.max()))
    bias = float(np.clip(np.exp(terms @ bias_fit), table_bias.min(), table_bias.max()))
    return true, bias


def estimate_noise_channels(part: np.ndarray) -> NoiseEstimate:
    """The noise of a ``(C, H, W)`` part: :func:`estimate_noise` per channel, averaged.

    Colour channels carry independent noise; estimating it on their mean
    would see a third of the variance of an RGB image. Variances (and the
    noise-level lines) are averaged, so ``sigma`` is the root-mean-square
    noise over all channels.
    """
    part = np.asarray(part)
    if part.ndim == 2:
        return estimate_noise(part)
    found = [estimate_noise(channel) for channel in part]
    if len(found) == 1:
        return found[0]
    return NoiseEstimate(
        float(np.sqrt(np.mean([e.sigma**2 for e in found]))),
        float(np.mean([e.correlation for e in found])),
        float(np.mean([e.gain for e in found])),
        float(np.mean([e.offset for e in found])),
        float(np.mean([e.floor for e in found])),
    )


def correlation_tap(correlation: float) -> float:
    """The tap s of the kernel [s, 1, s] whose blur of white noise has this lag-1 correlation.

    The blur's lag-1 correlation is 2s / (1 + 2s^2); ``correlation`` is
    clipped to [0, 0.7] first (0 below 1e-3).
    """
    rho = float(np.clip(correlation, 0.0, 0.7))
    return 0.0 if rho < 1e-3 else (1 - np.sqrt(max(1 - 2 * rho * rho, 0.0))) / (2 * rho)


def noise_autocorrelation(correlation: float) -> np.ndarray:
    """Autocorrelation at lags -2..2 of the noise model behind :func:`~napari_mpid.core.noise.estimate_noise`.

    That model blurs white noise by the kernel [s, 1, s] along each axis; its
    lag-1 correlation 2s / (1 + 2s^2) gives s, and the autocorrelation is
    separable: ``a(dy) * a(dx)``. FMD's wide-field noise fits it (lag-1 0.62,
    lag-2 0.23 measured against gt; the model gives 0.21 at that lag-1).
    """
    s = correlation_tap(correlation)
    return np.array([s * s, 2 * s, 1 + 2 * s * s, 2 * s, s * s]) / (1 + 2 * s * s)
