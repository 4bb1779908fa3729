"""Non-linear candidates of the mix, and their risk under Poisson-Gaussian noise.

The mix of :func:`~napari_mpid.core.auto.risk.plane_mix` is linear in the
noisy plane: however well its weights are chosen, it is one blur of the
plane, the same at an edge and in flat background. Two families here adapt
to the content, and the mix weighs them by the same risk estimate:

- :func:`nl_means`: NL-means (Buades, Coll & Morel, CVPR 2005) whose patch
  weights are computed on the variance-stabilised plane (the generalised
  Anscombe transform of Makitalo & Foi, IEEE TIP 2013: unit noise variance
  everywhere, so one filtering strength fits dark and bright regions) but
  which averages the plane itself, so no inverse transform, and no inverse
  bias, is needed. Twice: once comparing the patches themselves, once
  comparing them after a light blur (:data:`NLM_PREFILTER`). At a few
  photons per pixel the noise dominates the distance between two 5x5
  patches and similar structure is found by chance; the blurred comparison
  finds it more reliably and misses fine detail that the plain one keeps,
  so the mix weighs both (the prefiltered comparison of Buades, Coll &
  Morel's own follow-up, "Non-local image and movie denoising", IJCV 2008).
- :func:`shrunk_bands`: the differences of successive Gaussian blurs, each
  shrunk by its local Wiener gain: with the plain blurs already in the mix,
  a linear expansion of thresholds (PURE-LET, Luisier, Blu & Unser, IEEE TIP
  2011) on a Gaussian pyramid. On pixel-independent noise only: under the
  [s, 1, s] model of correlated noise its risk misled the mix on FMD's
  wide-field planes (docs/benchmarks.md, "Non-linear candidates in the mix").

**The risk.** For a denoiser ``f`` of ``y = x + n`` whose noise has per-pixel
variance ``v_i = a x_i + b`` (shot noise of gain ``a`` and read noise ``b``:
the noise-level line) and spatial correlation ``C``, the expected squared
error is estimated by ``|f - y|^2 / N + 2 D - mean(v)`` with
``D = (1/N) sum_ij v-weighted C_ij df_i/dy_j``: Stein's estimate for
Gaussian noise and, by Hudson's identity ``E[x g(y)] = E[y g(y - a)]`` to
first order in ``a`` (the PURE of Luisier et al.), for the Poisson part with
``v`` taken at the noisy pixel. For a linear filter with the same centre
weight everywhere ``D`` is that weight times the mean variance, which is
what the mix uses for its blurs; for these families :func:`divergence`
measures it by Monte-Carlo (Ramani, Blu & Unser, IEEE TIP 2008).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch

from napari_mpid.core.auto.policy import CORRELATED
from napari_mpid.core.filters import convolve_separable, gaussian_kernel
from napari_mpid.core.masks import correlated_field
from napari_mpid.core.noise import NoiseEstimate, correlation_tap

__all__ = [
    "BAND_SIGMAS",
    "FAMILIES",
    "NLM_H",
    "NLM_PREFILTER",
    "candidates",
    "divergence",
    "nl_means",
    "passed_variance",
    "pixel_variance",
    "shrunk_bands",
    "stabilise",
]

#: The families :func:`candidates` computes by default ("nlm": :func:`nl_means`; "nlm-prefiltered": the same
#: comparing patches blurred by :data:`NLM_PREFILTER`; "bands": :func:`shrunk_bands`).
FAMILIES = ("nlm", "nlm-prefiltered", "bands")
#: Strengths ``h`` of NL-means, in units of the stabilised noise; the mix weighs the three outputs.
NLM_H = (0.4, 0.7, 1.2)
#: NL-means compares ``(2 p + 1)^2`` patches over a ``(2 s + 1)^2`` search window.
NLM_PATCH = 2
NLM_SEARCH = 7
#: Width of the Gaussian blur of the stabilised plane before the patches are compared ("nlm-prefiltered").
NLM_PREFILTER = 1.0
#: Blur widths whose successive differences are the bands of :func:`shrunk_bands` (0: the plane).
BAND_SIGMAS = (0.0, 0.75, 1.5, 3.0)
#: Width of the Gaussian window over which a band's local energy is measured.
BAND_WINDOW = 2.0
#: Step of the Monte-Carlo divergence, in units of the probe (whose standard deviation is the noise's).
EPSILON = 1e-3
#: Side of the simulated field that measures how much of the noise each band passes.
_PROBE_SIDE = 128

Family = Callable[[np.ndarray], dict[str, np.ndarray]]


def pixel_variance(noisy: np.ndarray, noise: NoiseEstimate, variance: float) -> np.ndarray:
    """Per-pixel noise variance: the noise-level line at the noisy pixel, scaled to mean ``variance``.

    ``a y + b`` is unbiased for ``a x + b`` (the line is linear in the
    signal); the scaling makes these penalties and the blurs' (which use
    ``variance``) one scale.
    """
    line = np.asarray(noise.variance(noisy), dtype=np.float64)
    mean = float(line.mean())
    return line * (variance / mean) if mean > 0 else np.full(noisy.shape, variance)


def stabilise(plane: np.ndarray, noise: NoiseEstimate) -> np.ndarray:
    """The generalised Anscombe transform: noise of unit variance at every intensity.

    ``(2 / a) sqrt(a y + 3/8 a^2 + b)`` for noise of variance ``a x + b``
    (Makitalo & Foi 2013, the Gaussian part's mean taken as 0; a negative
    ``b``, a camera offset under the line, is kept: the root is clipped at
    0 instead); ``y / sigma`` for noise of one level.
    """
    if noise.gain <= 0:
        return plane / max(noise.sigma, 1e-12)
    a, b = noise.gain, noise.offset
    return (2.0 / a) * np.sqrt(np.maximum(a * plane + 0.375 * a * a + b, 0.0))


def nl_means(
    plane: np.ndarray, noise: NoiseEstimate, hs: tuple[float, ...] = NLM_H, prefilter: float = 0.0
) -> dict[str, np.ndarray]:
    """NL-means of a ``(H, W)`` plane, one output per strength ``h``.

    The pixel at offset ``d`` weighs ``exp(-max(dist - e, 0) / (h^2 e / 2))``,
    with ``dist`` the mean squared difference of the two patches on the
    stabilised plane and ``e`` its expectation between two patches of the
    same signal (2 under unit noise); the pixel itself weighs 1. With
    ``prefilter`` > 0 the stabilised plane is blurred by a Gaussian of that
    width first, which shrinks ``e`` by the share of the noise the blur
    passes (:func:`passed_variance`), so ``h`` keeps its meaning. Outputs
    ``"nlm h <h>"``, or ``"nlm prefiltered <prefilter> h <h>"``. Averages
    the plane itself, in float32 (the divergence reads the same to three
    digits as in float64, in two thirds of the time).
    """
    p, s = NLM_PATCH, NLM_SEARCH
    stabilised = stabilise(plane, noise)
    expected = 2.0
    if prefilter > 0:
        kernel = gaussian_kernel(prefilter)
        stabilised = convolve_separable(stabilised, kernel)
        expected = 2.0 * passed_variance(kernel, noise.correlation)
    z = torch.from_numpy(stabilised.astype(np.float32))
    y = torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float32))
    h, w = y.shape
    r = s + p
    zp = torch.nn.functional.pad(z[None, None], (r, r, r, r), mode="reflect")[0, 0]
    yp = torch.nn.functional.pad(y[None, None], (s, s, s, s), mode="reflect")[0, 0]
    inverse = [2.0 / (strength * strength * expected) for strength in hs]
    num = [y.clone() for _ in hs]  # the pixel itself, weight 1
    den = [torch.ones_like(y) for _ in hs]
    size = 2 * p + 1
    # The weight of a pair of pixels does not depend on which one is denoised: each offset d
    # and its opposite share one map of patch distances E(u) = dist(u, u + d), computed over
    # the positions u that both need (the image, and the image moved by -d).
    for dy in range(0, s + 1):
        for dx in range(-s, s + 1):
            if dy == 0 and dx <= 0:
                continue
            uy, ux = min(0, -dy), min(0, -dx)  # first u, relative to the image
            ny, nx = h + abs(dy), w + abs(dx)
            a = zp[r + uy - p : r + uy + ny + p, r + ux - p : r + ux + nx + p]
            b = zp[r + uy + dy - p : r + uy + dy + ny + p, r + ux + dx - p : r + ux + dx + nx + p]
            difference = a - b
            difference.mul_(difference)
            # In place from here on: the loop runs over every offset of the window, and
            # temporaries of the plane's size cost as much time as the arithmetic.
            excess = _box_mean(difference, size)
            excess.sub_(expected).clamp_(min=0.0)
            forward = yp[s + dy : s + dy + h, s + dx : s + dx + w]  # y(q + d)
            backward = yp[s - dy : s - dy + h, s - dx : s - dx + w]  # y(q - d)
            for k, c in enumerate(inverse):
                weight = torch.mul(excess, -c).exp_()
                ahead = weight[-uy : -uy + h, -ux : -ux + w]  # dist(q, q + d)
                behind = weight[-uy - dy : -uy - dy + h, -ux - dx : -ux - dx + w]  # dist(q - d, q)
                num[k].addcmul_(ahead, forward).addcmul_(behind, backward)
                den[k].add_(ahead).add_(behind)
    prefix = f"nlm prefiltered {prefilter:g}" if prefilter > 0 else "nlm"
    return {f"{prefix} h {strength:g}": (n / d).double().numpy() for strength, n, d in zip(hs, num, den)}


def _box_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over every ``size`` x ``size`` window of a 2-D tensor ("valid" positions only).

    Sums of shifted slices, one axis at a time: on one CPU thread a tenth of
    the time of ``avg_pool2d`` with stride 1, which dominated NL-means.
    """
    ny, nx = x.shape[0] - size + 1, x.shape[1] - size + 1
    rows = x[:, :nx].clone()
    for i in range(1, size):
        rows.add_(x[:, i : i + nx])
    out = rows[:ny].clone()
    for i in range(1, size):
        out.add_(rows[i : i + ny])
    return out.mul_(1.0 / (size * size))


def passed_variance(kernel: np.ndarray, correlation: float) -> float:
    """Variance that the separable blur ``kernel`` (along each axis) leaves of unit-variance noise.

    The noise is the model's: white noise blurred by the unit-norm kernel
    [s, 1, s] along each axis (:func:`~napari_mpid.core.noise.noise_autocorrelation`),
    so along one axis the blurred noise is white noise blurred by the
    convolution of both kernels, and the two axes multiply.
    """
    s = correlation_tap(max(correlation, 0.0))
    taps = np.convolve(np.asarray(kernel, dtype=np.float64), np.array([s, 1.0, s]) / np.sqrt(1 + 2 * s * s))
    return float(np.sum(taps**2)) ** 2


def _unit_field(shape: tuple[int, int], correlation: float, seed: int) -> np.ndarray:
    """Unit-variance noise ``(H, W)`` with the noise model's correlation (float64)."""
    generator = torch.Generator().manual_seed(seed)
    return correlated_field((1, 1, *shape), correlation, generator, "cpu")[0, 0].double().numpy()


def _blurs(plane: np.ndarray, sigmas: tuple[float, ...]) -> list[np.ndarray]:
    return [plane if s == 0 else convolve_separable(plane, gaussian_kernel(s)) for s in sigmas]


@functools.lru_cache(maxsize=16)
def _unit_blurs(sigmas: tuple[float, ...], correlation: float) -> tuple[np.ndarray, ...]:
    """Blurs of one simulated unit-noise field with the noise's correlation: what each blur passes of the noise.

    The same for every plane of a run (a fixed seed), so simulated once per set of blurs and correlation.
    """
    return tuple(_blurs(_unit_field((_PROBE_SIDE, _PROBE_SIDE), correlation, seed=12345), sigmas))


def shrunk_bands(plane: np.ndarray, noise: NoiseEstimate, sigmas: tuple[float, ...] = BAND_SIGMAS) -> dict:
    """Every band ``G_s y - G_t y`` of a ``(H, W)`` plane, shrunk by its local Wiener gain.

    The gain is ``max(E - N, 0) / E`` with ``E`` the band's local energy
    (Gaussian window :data:`BAND_WINDOW`) and ``N`` its noise energy: the
    share of unit noise the band passes (measured once on a simulated field
    with the noise's correlation) times the noise-level line at the local
    mean (the widest blur). Outputs ``"band <s>-<t> shrunk"``.
    """
    blurs = _blurs(plane, sigmas)
    unit = _unit_blurs(tuple(sigmas), max(noise.correlation, 0.0))
    level = np.asarray(noise.variance(blurs[-1]), dtype=np.float64)
    window = gaussian_kernel(BAND_WINDOW)
    out = {}
    for k in range(len(sigmas) - 1):
        band = blurs[k] - blurs[k + 1]
        passed = float(np.mean((unit[k] - unit[k + 1]) ** 2))
        energy = convolve_separable(band * band, window)
        gain = np.maximum(energy - passed * level, 0.0) / np.maximum(energy, 1e-30)
        out[f"band {sigmas[k]:g}-{sigmas[k + 1]:g} shrunk"] = gain * band
    return out


def divergence(
    family: Family,
    plane: np.ndarray,
    std: np.ndarray,
    correlation: float,
    outputs: dict[str, np.ndarray],
    seed: int = 0,
) -> dict[str, float]:
    """``D`` of every output of ``family`` at the ``(H, W)`` plane, by one Monte-Carlo probe.

    The probe is ``std`` (the per-pixel noise standard deviation) times a
    unit field with the noise's correlation; ``D = mean(probe * (f(y + eps
    probe) - f(y))) / eps``. One probe suffices on a plane: the estimate is
    already a mean over its pixels.
    """
    probe = std * _unit_field(plane.shape, correlation, seed)
    moved = family(plane + EPSILON * probe)
    return {name: float(np.mean(probe * (moved[name] - value))) / EPSILON for name, value in outputs.items()}


def candidates(
    noisy: np.ndarray, noise: NoiseEstimate, variance: float, families: tuple[str, ...] = FAMILIES
) -> dict[str, tuple[np.ndarray, float]]:
    """The non-linear candidates of a ``(C, H, W)`` plane with their penalties, for the mix.

    Returns ``name -> (candidate (C, H, W), D)``, ``D`` the divergence under
    :func:`pixel_variance` scaled to ``variance`` (the variance the mix's
    blurs use), averaged over channels. Of ``families``: NL-means (both
    comparisons) always, the shrunk bands on pixel-independent noise only
    (correlation below
    :data:`~napari_mpid.core.auto.policy.CORRELATED`).
    """
    unknown = set(families) - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown candidate families {sorted(unknown)}; known: {', '.join(FAMILIES)}")
    rho = max(noise.correlation, 0.0)
    chosen: list[Family] = []
    if "nlm" in families:
        chosen.append(lambda z: nl_means(z, noise))
    if "nlm-prefiltered" in families:
        chosen.append(lambda z: nl_means(z, noise, prefilter=NLM_PREFILTER))
    if "bands" in families and rho < CORRELATED:
        chosen.append(lambda z: shrunk_bands(z, noise))
    std = np.sqrt(pixel_variance(noisy, noise, variance))
    out: dict[str, tuple[list[np.ndarray], list[float]]] = {}
    for family in chosen:
        for c in range(noisy.shape[0]):
            plane = np.asarray(noisy[c], dtype=np.float64)
            outputs = family(plane)
            penalties = divergence(family, plane, std[c], rho, outputs, seed=c)
            for name, value in outputs.items():
                planes, ds = out.setdefault(name, ([], []))
                planes.append(value)
                ds.append(penalties[name])
    return {name: (np.stack(planes), float(np.mean(ds))) for name, (planes, ds) in out.items()}
