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
4. The lag-1 correlation is measured on the residuals of the same flat blocks.
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

Numpy only; 20-30 ms for a 512x512 plane (benchmarks/noise_estimate.py).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

__all__ = ["NoiseEstimate", "block_estimate", "estimate_noise", "estimate_noise_channels", "patch_noise_variance"]

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
#: Correlated noise of lag-1 >~ 0.5 leaves less than this share of its variance in the
#: patches' smallest eigenvalues, and is measured by the blocks alone; a plane whose
#: patches hold more is taken to have pixel-independent noise (FMD wide-field: 0.08-0.12,
#: confocal 0.33-1.15, two-photon 0.62-0.88 from single captures to means of 8;
#: benchmarks/noise_estimate.py).
SPECTRAL_FLOOR = 0.2


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
    """

    sigma: float
    correlation: float
    gain: float
    offset: float
    floor: float = 0.0

    def variance(self, intensity):
        """Noise variance at ``intensity`` (scalar or array): the noise-level line, at least :attr:`floor`."""
        return np.maximum(self.gain * np.asarray(intensity, dtype=np.float64) + self.offset, self.floor)

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 6) for k, v in vars(self).items()}


def _blocks(plane: np.ndarray) -> np.ndarray:
    h, w = (plane.shape[0] // BLOCK) * BLOCK, (plane.shape[1] // BLOCK) * BLOCK
    blocks = plane[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).transpose(0, 2, 1, 3)
    return blocks.reshape(-1, BLOCK, BLOCK)


def _detrend(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-block mean and the residual after removing the best quadratic surface.

    A quadratic (6 terms) rather than a plane takes the curvature of smooth
    signal out too, which would otherwise pass for correlated noise in weakly
    noisy planes (FMD confocal at avg4: estimated lag-1 0.27-0.48 with planes,
    0.15-0.48 with quadratics; wide-field stays at 0.58-0.64).
    """
    c = (np.arange(BLOCK, dtype=np.float64) - (BLOCK - 1) / 2) / BLOCK
    y, x = np.meshgrid(c, c, indexing="ij")
    design = np.stack(
        [np.ones(BLOCK * BLOCK), y.ravel(), x.ravel(), (y * y).ravel(), (x * y).ravel(), (x * x).ravel()], axis=1
    )
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
        # and part of their variance were texture.
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


def block_estimate(data: np.ndarray) -> NoiseEstimate:
    """Steps 1-4 of :func:`estimate_noise`: the noise-level line and correlation of the flattest blocks alone.

    ``data`` is a float64 ``(H, W)`` plane of at least 32x32 pixels.
    """
    means, residual = _detrend(_blocks(data))
    # Removing a 6-parameter surface from 64 values leaves 58 degrees of freedom.
    variances = (residual**2).sum(axis=(1, 2)) / (BLOCK * BLOCK - _TERMS)
    edges = np.quantile(means, np.linspace(0, 1, INTENSITY_BINS + 1))
    chosen = []
    for lo, hi in itertools.pairwise(edges):
        in_bin = np.flatnonzero((means >= lo) & (means <= hi))
        if len(in_bin) == 0:
            continue
        keep = max(1, int(len(in_bin) * FLAT_FRACTION))
        chosen.extend(in_bin[np.argsort(variances[in_bin])[:keep]])
    chosen = np.unique(np.asarray(chosen))
    # Residual statistics of the chosen blocks are biased twice: the lowest
    # quarter of a bin's variances underestimates the noise variance even
    # where every block is pure noise, and detrending shortens correlations.
    # Both biases depend on the correlation; they are read off a table made
    # by simulating the same procedure on noise of known correlation.
    measured = _lag1(residual[chosen])
    correlation, bias = _calibration(measured)
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


def _lag1(residual: np.ndarray) -> float:
    """Mean of the horizontal and vertical lag-1 correlations of block residuals."""
    norm = float((residual**2).sum())
    if norm <= 0:
        return 0.0
    horizontal = float((residual[:, :, 1:] * residual[:, :, :-1]).sum()) / norm
    vertical = float((residual[:, 1:, :] * residual[:, :-1, :]).sum()) / norm
    return (horizontal + vertical) / 2


def correlated_noise(shape: tuple[int, ...], strength: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance noise blurred by the separable kernel [s, 1, s] (s = ``strength``, 0 = white; 0.6: lag-1 ~0.7)."""
    noise = rng.standard_normal(shape)
    if strength > 0:
        k = np.array([strength, 1.0, strength])
        for axis in (-2, -1):
            noise = sum(w * np.roll(noise, shift, axis=axis) for w, shift in zip(k, (-1, 0, 1)))
    return noise / noise.std()


@functools.cache
def _calibration_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(measured residual lag-1, true lag-1, selection bias of the variance) for noise of rising correlation.

    Simulated once with a fixed seed: 4000 blocks of noise per strength of
    the [s, 1, s] kernel, detrended and selected as :func:`estimate_noise` does.
    """
    rng = np.random.default_rng(0)
    measured, true, bias = [], [], []
    for strength in np.linspace(0.0, 0.6, 13):  # measured lag-1 rises monotonically up to 0.6
        field = correlated_noise((40, BLOCK * 10, BLOCK * 10), float(strength), rng)
        blocks = field.reshape(40, 10, BLOCK, 10, BLOCK).transpose(0, 1, 3, 2, 4).reshape(-1, BLOCK, BLOCK)
        _, residual = _detrend(blocks)
        variances = (residual**2).sum(axis=(1, 2)) / (BLOCK * BLOCK - _TERMS)
        keep = np.argsort(variances)[: int(len(variances) * FLAT_FRACTION)]
        measured.append(_lag1(residual[keep]))
        true.append(float(np.mean([np.mean(field[..., 1:] * field[..., :-1]), np.mean(field[:, 1:] * field[:, :-1])])))
        bias.append(float(variances[keep].mean()))
    return np.array(measured), np.array(true), np.array(bias)


def _calibration(measured: float) -> tuple[float, float]:
    """True lag-1 correlation and variance bias for a measured residual lag-1 correlation."""
    table_measured, table_true, table_bias = _calibration_table()
    return (
        float(np.interp(measured, table_measured, table_true)),
        float(np.interp(measured, table_measured, table_bias)),
    )


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
