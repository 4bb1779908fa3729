"""A risk estimate for Poisson-Gaussian noise that covers non-linear candidates, and non-linear candidate families.

Research code for issue 20 (items 1-2), not yet part of the package: plain
functions on ``(H, W)`` float64 planes, numpy/scipy/torch only, measured by
``benchmarks/pg_candidates.py`` and checked by ``tests/core/test_pg_risk.py``.

**The risk.** For a denoiser ``f`` of a plane ``y = x + n`` whose noise has
per-pixel variance ``v_i = a x_i + b`` (the noise-level line; Poisson shot
noise of gain ``a`` plus Gaussian read noise ``b``) and spatial covariance
``C``, the mean squared error against the unknown ``x`` is estimated by

    R(f) = |f - y|^2 / N + 2 D(f) - mean(v),
    D(f) = (1 / N) sum_i sum_j C_ij df_i / dy_j.

For Gaussian noise this is Stein's unbiased risk estimate. For the Poisson
part, Hudson's identity ``E[x g(y)] = E[y g(y - a)]`` (the PURE of Luisier,
Blu & Unser, IEEE TIP 2010-2011) gives ``E[(y - x) f(y)] = E[y (f(y) - f(y -
a))]``, which to first order in ``a`` is ``E[a y df/dy]``: the same formula
with ``v`` evaluated at the noisy pixel (``a y + b`` is unbiased for ``a x +
b``). The neglected term is of order ``a^2 y f''``: small where the
candidate is smooth at the scale of one photon's worth of intensity, which
``tests/core/test_pg_risk.py`` checks within 5 % on synthetic
Poisson-Gaussian planes.

For a linear candidate whose centre weight is the same at every pixel,
``D`` is that weight times the mean variance: the Gaussian SURE of
:func:`napari_mpid.core.auto.plane_mix` with the mean variance is already
right. For anything else (a locally adaptive filter, NL-means) ``D``
depends on where the candidate follows its input, and the per-pixel
variance matters. :func:`mc_divergence` measures ``D`` by Monte-Carlo
(Ramani, Blu & Unser, IEEE TIP 2008): perturb ``y`` by ``eps * p`` with a
probe ``p`` of covariance ``C`` (the per-pixel standard deviation times the
noise model's correlated unit field, :func:`napari_mpid.core.auto.
correlated_field`) and read off ``mean(p * (f(y + eps p) - f(y))) / eps``.

**The families.**

- :func:`adaptive_wiener`: the local linear minimum-mean-square-error
  (Lee / Wiener) filter: a Gaussian local mean plus the share of the
  deviation from it that the local signal variance explains, with the
  noise variance from the noise-level line at the local mean.
- :func:`band_shrink`: the differences of successive Gaussian blurs (a
  band-pass pyramid), each shrunk by its local Wiener gain: the linear
  expansion of thresholds of PURE-LET, with Gaussian bands in place of
  Haar wavelets; the mix weighs every shrunk band.
- :func:`nl_means`: NL-means (Buades, Coll & Morel 2005) whose patch
  weights are computed on the generalised-Anscombe-stabilised plane
  (Makitalo & Foi 2013: unit noise variance everywhere, so one ``h`` fits
  dark and bright regions) but which averages the plane itself, so no
  inverse transform (and no inverse bias) is needed.

:func:`mix` is :func:`napari_mpid.core.auto.plane_mix` with these
candidates added to its design: each enters with its measured ``D`` as the
penalty of its weight.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

import napari_mpid.core.auto as auto
from napari_mpid.core.noise import NoiseEstimate

__all__ = [
    "adaptive_wiener",
    "band_shrink",
    "gat",
    "mc_divergence",
    "mix",
    "nl_means",
    "pixel_variance",
    "probe",
    "risk",
]

#: Step of the Monte-Carlo divergence, in units of the probe (whose standard deviation is the noise's).
EPSILON = 1e-3


def pixel_variance(noisy: np.ndarray, noise: NoiseEstimate, variance: float | None = None) -> np.ndarray:
    """Per-pixel noise variance of a ``(H, W)`` plane: the noise-level line at the noisy pixel.

    ``a y + b`` is unbiased for ``a x + b`` (the line is linear), but the
    line's floor clips it from below in the dark. With ``variance``, the
    line is scaled so that its mean over the plane is that value (the
    variance the mix uses; e.g. one measured against a clean reference).
    """
    line = np.asarray(noise.variance(noisy), dtype=np.float64)
    if variance is not None and line.mean() > 0:
        line = line * (variance / line.mean())
    return line


def probe(shape: tuple[int, int], std: np.ndarray | float, correlation: float, seed: int = 0) -> np.ndarray:
    """A ``(H, W)`` probe whose covariance is the noise model's: ``std`` times a correlated unit field.

    The unit field has the autocorrelation of
    :func:`napari_mpid.core.auto.noise_autocorrelation` (white noise blurred
    by [s, 1, s] along each axis); ``std`` is the per-pixel noise standard
    deviation (array) or one value.
    """
    generator = torch.Generator().manual_seed(seed)
    field = auto.correlated_field((1, 1, *shape), correlation, generator, "cpu")[0, 0].double().numpy()
    return np.asarray(std) * field


def mc_divergence(
    candidate: Callable[[np.ndarray], dict[str, np.ndarray]],
    noisy: np.ndarray,
    std: np.ndarray | float,
    correlation: float,
    outputs: dict[str, np.ndarray] | None = None,
    probes: int = 1,
    seed: int = 0,
) -> dict[str, float]:
    """``D`` of every output of ``candidate`` at ``noisy``: the mean covariance-weighted divergence.

    Parameters
    ----------
    candidate : callable
        Maps a ``(H, W)`` plane to named ``(H, W)`` outputs (a family
        computes several at once, e.g. NL-means at several ``h``).
    noisy : ndarray
        ``(H, W)`` plane.
    std : ndarray or float
        Per-pixel noise standard deviation (``sqrt`` of :func:`pixel_variance`).
    correlation : float
        The noise's lag-1 correlation (0 for pixel-independent noise).
    outputs : dict, optional
        ``candidate(noisy)`` when already computed.
    probes : int
        Probes averaged (one suffices on a full plane: the estimate averages
        over its pixels).
    seed : int
        Seed of the first probe.

    Returns
    -------
    dict
        ``D`` per output, in the plane's squared units:
        ``mean(p * (f(y + eps p) - f(y))) / eps``.
    """
    outputs = candidate(noisy) if outputs is None else outputs
    total = dict.fromkeys(outputs, 0.0)
    for k in range(probes):
        p = probe(noisy.shape, std, correlation, seed + k)
        moved = candidate(noisy + EPSILON * p)
        for name, value in outputs.items():
            total[name] += float(np.mean(p * (moved[name] - value))) / EPSILON
    return {name: t / probes for name, t in total.items()}


#: Step of the second-order Monte-Carlo term, in units of its probe (about the noise's standard deviation).
SECOND_EPSILON = 0.1
#: Share of the two-point probe's pixels at its high value: third moment (1 - 2q) / sqrt(q (1 - q)).
_SKEW = 0.1


def mc_poisson_curvature(
    candidate: Callable[[np.ndarray], dict[str, np.ndarray]],
    noisy: np.ndarray,
    gain: float,
    offset: float,
    outputs: dict[str, np.ndarray] | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """The second-order Poisson term of the risk: ``mean((a^2 y / 2 + a b) d2f_i / dy_i^2)`` per output.

    Hudson's identity makes the exact cross term of Poisson-Gaussian noise
    (``y = a P + G``, ``P`` Poisson, ``G`` of variance ``b``)
    ``E[(y - x) f(y)] = E[y (f(y) - f(y - a))] + b E[f'(y - a)]``, which to
    second order in ``a`` is ``E[(a y + b) f'] - E[(a^2 y / 2 + a b) f'']``
    (the PURE of Luisier, Blu & Unser, IEEE TIP 2011, by Taylor expansion).
    The first part is :func:`mc_divergence`'s ``D``; this returns the
    second, which :func:`risk` subtracts from it. Only the diagonal second
    derivatives count: a probe ``c`` of independent entries with zero mean
    and non-zero third moment ``k`` gives
    ``E[c' (f(y + e c) - 2 f(y) + f(y - e c))] / (e^2 k) = sum_i w_i f_i,ii``
    when ``c_i`` is scaled by ``w_i^(1/3)``. A candidate that is smooth at
    the scale of one photon (a blur) has none; NL-means' weights are not.
    """
    outputs = candidate(noisy) if outputs is None else outputs
    weight = 0.5 * gain * gain * noisy + gain * offset
    rng = np.random.default_rng(seed)
    bernoulli = (rng.random(noisy.shape) < _SKEW).astype(np.float64)
    unit = (bernoulli - _SKEW) / np.sqrt(_SKEW * (1 - _SKEW))
    third = (1 - 2 * _SKEW) / np.sqrt(_SKEW * (1 - _SKEW))
    scale = np.cbrt(weight)
    c = scale * unit
    # Steps in units of the noise: e * c is about SECOND_EPSILON standard deviations.
    step = (
        SECOND_EPSILON
        * float(np.sqrt(np.mean(gain * np.maximum(noisy, 0) + max(offset, 0.0))))
        / max(float(np.sqrt(np.mean(c * c))), 1e-30)
    )
    up, down = candidate(noisy + step * c), candidate(noisy - step * c)
    return {
        name: float(np.mean(c * (up[name] - 2 * value + down[name]))) / (step * step * third)
        for name, value in outputs.items()
    }


def risk(estimate: np.ndarray, noisy: np.ndarray, variance: np.ndarray | float, divergence: float) -> float:
    """Estimated mean squared error of ``estimate`` against the clean plane: ``|f - y|^2 / N + 2 D - mean(v)``."""
    return float(np.mean((estimate - noisy) ** 2) + 2 * divergence - np.mean(variance))


def gat(noisy: np.ndarray, gain: float, offset: float) -> np.ndarray:
    """The generalised Anscombe transform for noise of variance ``gain * x + offset``: unit variance everywhere.

    ``(2 / a) sqrt(a y + 3/8 a^2 + b)`` for ``a > 0`` (Makitalo & Foi, IEEE
    TIP 2013, with the Gaussian part's mean taken as 0), ``y / sqrt(b)`` for
    noise of one level.
    """
    if gain <= 0:
        return noisy / np.sqrt(max(offset, 1e-12))
    return (2.0 / gain) * np.sqrt(np.maximum(gain * noisy + 0.375 * gain * gain + offset, 0.0))


def adaptive_wiener(
    noisy: np.ndarray, noise: NoiseEstimate, sigmas=(1.0, 2.0), scale: float = 1.0
) -> dict[str, np.ndarray]:
    """Local LMMSE (Lee) filters: ``m + s2 / (s2 + v) (y - m)`` with Gaussian local moments.

    ``m`` and the local variance are Gaussian-weighted (width ``sigma``);
    ``v`` is the noise-level line at ``m`` times ``scale``; ``s2`` the
    local variance less ``v``, at least 0. Smooth where the plane is flat
    for its noise, the noisy pixel where structure stands out of it.
    """
    out = {}
    for sigma in sigmas:
        m = gaussian_filter(noisy, sigma, mode="reflect")
        local = np.maximum(gaussian_filter(noisy * noisy, sigma, mode="reflect") - m * m, 0.0)
        v = scale * np.asarray(noise.variance(m), dtype=np.float64)
        signal = np.maximum(local - v, 0.0)
        out[f"wiener {sigma:g}"] = m + signal / np.maximum(signal + v, 1e-30) * (noisy - m)
    return out


#: Blur widths whose successive differences are the bands of :func:`band_shrink` (0: the plane).
BAND_SIGMAS = (0.0, 0.75, 1.5, 3.0)


def band_shrink(
    noisy: np.ndarray, noise: NoiseEstimate, correlation: float, sigmas=BAND_SIGMAS, window: float = 2.0
) -> dict[str, np.ndarray]:
    """Every band ``G_s y - G_t y`` of a Gaussian pyramid, shrunk by its local Wiener gain.

    The gain is ``max(E - N, 0) / E`` with ``E`` the band's local energy
    (Gaussian window ``window``) and ``N`` its noise energy: the band
    filter's response to the noise model's unit field (measured once on a
    simulated field) times the noise-level line at the local mean. The mix
    weighs the shrunk bands, which, with the plain blurs already there,
    spans a linear expansion of thresholds (PURE-LET) on a Gaussian pyramid.
    """
    blurs = [noisy if s == 0 else gaussian_filter(noisy, s, mode="reflect") for s in sigmas]
    unit = probe((128, 128), 1.0, correlation, seed=12345)
    unit_blurs = [unit if s == 0 else gaussian_filter(unit, s, mode="wrap") for s in sigmas]
    level = np.asarray(noise.variance(blurs[-1]), dtype=np.float64)
    out = {}
    for k in range(len(sigmas) - 1):
        band = blurs[k] - blurs[k + 1]
        factor = float(np.mean((unit_blurs[k] - unit_blurs[k + 1]) ** 2))
        energy = gaussian_filter(band * band, window, mode="reflect")
        noise_energy = factor * level
        gain = np.maximum(energy - noise_energy, 0.0) / np.maximum(energy, 1e-30)
        out[f"band {sigmas[k]:g}-{sigmas[k + 1]:g} shrunk"] = gain * band
    return out


def nl_means(
    noisy: np.ndarray,
    noise: NoiseEstimate,
    hs=(0.4, 0.7, 1.2),
    patch: int = 2,
    search: int = 5,
    blurred: tuple[float, ...] = (),
) -> dict[str, np.ndarray]:
    """NL-means of the plane with patch weights from its variance-stabilised copy, one output per ``h``.

    The weight of the pixel at offset ``d`` is ``exp(-max(dist - 2, 0) / h^2)``,
    ``dist`` the mean squared difference of the two ``(2 patch + 1)^2``
    patches of the stabilised plane (:func:`gat`; 2 is its expectation
    between two patches of the same signal under unit white noise), over a
    ``(2 search + 1)^2`` window; the pixel itself has weight 1. The plane
    itself (not its stabilised copy) is averaged, so the output needs no
    inverse transform. ``blurred``: Gaussian widths of blurs of the plane
    that are averaged with the same weights too (outputs ``"nlm h <h>, blur
    <s>"``): a blur restricted to similar patches, which no linear mix of
    the plane's blurs and of NL-means spans.
    """
    # float32: the Monte-Carlo divergence reads the same to 3 digits as in float64, in 2/3 of the time.
    stable = gat(noisy, max(noise.gain, 0.0), noise.offset if noise.gain > 0 else noise.sigma**2)
    z = torch.from_numpy(stable.astype(np.float32))
    averaged = [noisy] + [gaussian_filter(noisy, s, mode="reflect") for s in blurred]
    y = torch.from_numpy(np.stack(averaged).astype(np.float32))
    _, h, w = y.shape
    r = search + patch
    zp = torch.nn.functional.pad(z[None, None], (r, r, r, r), mode="reflect")[0, 0]
    yp = torch.nn.functional.pad(y[None], (search,) * 4, mode="reflect")[0]
    centre = zp[search : search + h + 2 * patch, search : search + w + 2 * patch]
    inverse = [1.0 / (hh * hh) for hh in hs]
    num = [torch.zeros_like(y) for _ in hs]
    den = [torch.zeros_like(y[0]) for _ in hs]
    size = 2 * patch + 1
    for dy in range(-search, search + 1):
        for dx in range(-search, search + 1):
            other = zp[search + dy : search + dy + h + 2 * patch, search + dx : search + dx + w + 2 * patch]
            dist = torch.nn.functional.avg_pool2d(((centre - other) ** 2)[None, None], size, stride=1)[0, 0]
            excess = torch.clamp(dist - 2.0, min=0.0)
            shifted = yp[:, search + dy : search + dy + h, search + dx : search + dx + w]
            for k, c in enumerate(inverse):
                weight = torch.exp(-excess * c)
                num[k] += weight * shifted
                den[k] += weight
    out = {}
    for hh, n, d in zip(hs, num, den):
        result = (n / d).double().numpy()
        out[f"nlm h {hh:g}"] = result[0]
        out.update({f"nlm h {hh:g}, blur {s:g}": result[1 + i] for i, s in enumerate(blurred)})
    return out


def mix(
    noisy: np.ndarray,
    noise: NoiseEstimate,
    variance: float,
    extra: dict[str, tuple[np.ndarray, float]] | None = None,
) -> tuple[np.ndarray, float, dict[str, float]]:
    """:func:`napari_mpid.core.auto.plane_mix` of a ``(H, W)`` plane with ``extra`` candidates in its design.

    ``extra`` maps a name to ``(candidate, D)``, ``D`` the mean
    covariance-weighted divergence of :func:`mc_divergence` measured with
    :func:`pixel_variance` scaled to ``variance`` (the variance the blurs'
    penalties use), so every term of the design is penalised on one scale.
    Without ``extra`` it returns what ``plane_mix`` returns (same design,
    same solver); the extra weights are non-negative like the blurs'.
    Returns (mixture, estimated risk, weights).
    """
    extra = extra or {}
    rho = max(noise.correlation, 0.0)
    names = ["noisy", *(f"blur {s:g}" for s in auto.COMBINE_SIGMAS), *extra]
    planes = [noisy] + [auto._convolve_separable(noisy, auto._gaussian_kernel(s)) for s in auto.COMBINE_SIGMAS]
    planes += [c for c, _ in extra.values()]
    x = noisy.ravel()
    n = x.size
    line = np.asarray(noise.variance(x), dtype=np.float64)
    varying = rho < auto.CORRELATED and bool(auto.VARYING) and auto.signal_dependent(line)
    pixel = line * (variance / line.mean()) if varying else np.full(n, variance)
    slopes = [1.0, *(auto.blur_slope(s, rho) for s in auto.COMBINE_SIGMAS)]
    columns = [p.ravel() for p in planes] + [np.ones(n)]
    penalty = [float(np.mean(pixel)) * d for d in slopes] + [d for _, d in extra.values()] + [0.0]
    free_names = ["offset"]
    if varying:
        kernel = auto._gaussian_kernel(2.0)
        own = kernel[len(kernel) // 2] ** 2
        local = auto._convolve_separable(noisy, kernel).ravel()
        local -= local.mean()
        for name in auto.VARYING:
            i = names.index(name)
            columns.append(local * columns[i])
            penalty.append(float(np.mean(pixel * (own * columns[i] + local * slopes[i]))))
            free_names.append(f"{name} x intensity")
    design = np.stack(columns, axis=1)
    penalty_vector = np.array(penalty)
    coef = auto._nonnegative_quadratic(design.T @ design / n, design.T @ x / n - penalty_vector, free=len(names))
    mixed = (design @ coef).reshape(noisy.shape)
    estimated = float(np.mean((mixed - noisy) ** 2) + 2 * penalty_vector @ coef - np.mean(pixel))
    return mixed, estimated, {k: float(coef[i]) for i, k in enumerate([*names, *free_names])}
