"""The ``auto`` preset: filling settings, stopping and the final mix chosen per plane from the plane itself.

MPI's fixed settings suit strong, spatially correlated noise; on weak or
pixel-independent noise they lose to a well-chosen Gaussian blur
(docs/benchmarks.md). Here, without any clean image:

1. :func:`~napari_mpid.core.noise.estimate_noise` measures the plane's noise
   level and its lag-1 correlation.
2. :func:`choose_filling` sets the mask ratio from the correlation.
3. A small random set of pixels is held out of the filling (never shown to
   the network, never a training target). Their running average is then a
   J-invariant estimate (Batson & Royer, Noise2Self, 2019): its squared
   difference to the noisy image is the true error plus the noise variance,
   so :class:`EarlyStop` can stop the filling when it stops improving.
4. :func:`combine` mixes the noisy plane, its blurs and (for stacks) other
   planes by Stein's unbiased risk estimate over all pixels, then the
   filling with that mix and the noisy pixel on the held-out pixels,
   shrunk towards the first mix by the evidence for it.
Every choice and its reason is recorded in the run's notes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .noise import NoiseEstimate

__all__ = [
    "FAMILIES",
    "HOLDOUT_FRACTION",
    "NEIGHBOUR_SIGMAS",
    "REGISTER_MIN",
    "SIGNAL_DEPENDENT",
    "VARYING",
    "Combination",
    "EarlyStop",
    "blur_slope",
    "choose_filling",
    "combine",
    "correlated_field",
    "family_of",
    "holdout_mask",
    "neighbour_candidates",
    "network_decision",
    "noise_autocorrelation",
    "plane_mix",
    "signal_dependent",
]

#: Fraction of pixels held out of the filling to score it.
HOLDOUT_FRACTION = 0.04
#: Noise with a lag-1 correlation at or above this is treated as spatially correlated:
#: FMD's wide-field images measure 0.61-0.63, its confocal and two-photon ones 0.08-0.33
#: (estimate_noise on the 12 first captures).
CORRELATED = 0.45
#: Blurs of the noisy plane that :func:`combine` mixes in.
COMBINE_SIGMAS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
#: Blurs of the means of other planes (:func:`neighbour_candidates`). 0.5 and 0.75 let the mix
#: reproduce a static series' best baseline, the mean of the frames blurred by 0.75.
NEIGHBOUR_SIGMAS = (0.5, 0.75, 1.0, 2.0)
#: Other planes that registration would move by less than this (pixels, along Y or X) are
#: used as they are: interpolating a plane smooths it, which cost more than a sub-pixel
#: misalignment on the still series and Z-stacks (a development replay, not kept). The gain of
#: registration above the gate: docs/benchmarks.md, "Weight rules of stage 1" (mix_family.py).
REGISTER_MIN = 0.5
#: Terms of :func:`plane_mix` whose weight may change linearly with the local intensity
#: (pixel-independent noise only): the noisy plane and one light and one strong blur.
#: Varying every term instead fits the noise model's errors too (drift, single ladder
#: images); docs/benchmarks.md, "Weight rules of stage 1" (benchmarks/mix_family.py).
VARYING = ("noisy", "blur 1", "blur 2")
#: Least ratio of the noise variance at the 90th and 10th percentile of a plane's pixels
#: (from the noise-level line) for the weights to follow the intensity (:func:`signal_dependent`).
SIGNAL_DEPENDENT = 2.0
#: A J-invariant candidate whose held-out error is below this fraction of the
#: estimated noise variance is taken to share the plane's noise and left out
#: (the estimate can be ~2x too high on textured planes, hence the margin).
NOT_INDEPENDENT = 0.1
#: :func:`combine` takes ``1 - (EVIDENCE / t)^2`` of its held-out mixture, t being the
#: mixture's estimated gain over the plane's own answer in standard errors.
EVIDENCE = 1.0


def choose_filling(noise: NoiseEstimate, model_ratio: float) -> tuple[dict[str, float], str]:
    """Filling settings for a plane with this noise; returns (FillParams changes, reason).

    Spatially correlated noise (lag-1 correlation >= :data:`CORRELATED`) keeps the model's
    own mask ratio (the paper's 85 % for real camera noise): dropped pixels
    must not see their correlated neighbours. Otherwise the noise is close to
    pixel-independent and a lower ratio shows the network more of the plane.
    """
    if noise.correlation >= CORRELATED:
        return {"mask_ratio": model_ratio}, f"correlated noise (lag-1 {noise.correlation:.2f}): mask {model_ratio:.2f}"
    ratio = min(model_ratio, 0.5)
    return {"mask_ratio": ratio}, f"nearly independent noise (lag-1 {noise.correlation:.2f}): mask {ratio:.2f}"


def network_decision(part: np.ndarray, noise: NoiseEstimate | None = None) -> tuple[bool, str]:
    """Whether the network is worth running on a plane, from its noise alone; returns (run it, why).

    The final mix (:func:`combine`) weighs the network's filling against
    blurs of the plane, the noisy pixel and other planes of a stack, so the
    network only pays for its run time where it earns weight there. Two
    kinds of noise decide it before the costly part:

    - Spatially correlated noise (lag-1 correlation >= :data:`CORRELATED`,
      wide-field cameras) and pixel-independent noise whose level follows
      the signal (:func:`signal_dependent`: Poisson-Gaussian shot noise, the
      fluorescence confocal and two-photon case): on such planes the mix of
      blurs and neighbour means is a near-optimal linear filter of smooth
      structure, and the filling gets weight close to zero.
    - Noise of one level everywhere (read-noise-limited cameras, or
      Gaussian noise added by software) on textured content: blurs remove
      little noise without removing structure, and the filling earns most
      of the weight.

    docs/benchmarks.md ("The network's value and cost") lists what the
    network adds per benchmark family under both kinds of noise. ``part``
    is ``(C, H, W)`` in [0, 1]; ``noise`` is its estimate when already known.
    """
    part = np.asarray(part)
    if noise is None:
        from .noise import estimate_noise_channels

        noise = estimate_noise_channels(part)
    if noise.correlation >= CORRELATED:
        return False, f"spatially correlated noise (lag-1 {noise.correlation:.2f}): blur mix only"
    if signal_dependent(np.asarray(noise.variance(part.reshape(-1)))):
        return False, "noise that grows with the signal (shot noise): blur mix only"
    return True, "noise of one level over the plane: network filling joins the mix"


#: Candidate name prefixes -> the family a result's summary credits them to.
_FAMILIES = (
    ("filling", "network"),
    ("context prediction", "network"),
    ("noisy", "noisy pixel"),
    ("blur", "blurs"),
)
#: Every family, in the order summaries list them.
FAMILIES = ("network", "neighbour planes", "blurs", "noisy pixel")


def family_of(candidate: str) -> str:
    """The family of a candidate of :func:`combine` ("network", "neighbour planes", "blurs", "noisy pixel")."""
    return next((family for prefix, family in _FAMILIES if candidate.startswith(prefix)), "neighbour planes")


def holdout_mask(shape: tuple[int, int, int, int], generator: torch.Generator, device) -> torch.Tensor:
    """``(B, 1, H, W)`` float mask, 1 at the held-out pixels (:data:`HOLDOUT_FRACTION` of them)."""
    return (torch.rand(shape, generator=generator, device=device) < HOLDOUT_FRACTION).to(torch.float32)


class EarlyStop:
    """Stop the filling once the held-out score has not improved for a while.

    The score is noisy from one iteration to the next, so it is smoothed over
    ``window`` iterations; the filling stops after ``patience`` iterations
    without a new best (and not before ``minimum``). The best running
    average is kept by the caller when :meth:`update` says it improved.
    """

    def __init__(self, window: int = 10, patience: int = 40, minimum: int = 60) -> None:
        self.window, self.patience, self.minimum = window, patience, minimum
        self.best = np.inf
        self.best_iteration = 0
        self.stopped_at: int | None = None

    def update(self, scores: np.ndarray) -> tuple[bool, bool]:
        """Scores of iterations 1..t so far; returns (improved, stop)."""
        t = len(scores)
        smoothed = float(np.mean(scores[-self.window :]))
        improved = t >= self.window and smoothed < self.best
        if improved:
            self.best, self.best_iteration = smoothed, t
        stop = t >= self.minimum and t - self.best_iteration >= self.patience
        if stop:
            self.stopped_at = t
        return improved, stop


def _gaussian_kernel(sigma: float, minimum_radius: int = 2) -> np.ndarray:
    radius = max(minimum_radius, int(np.ceil(4 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _convolve_separable(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2D convolution with ``outer(kernel, kernel)``, reflecting at the borders (numpy only)."""
    r = len(kernel) // 2
    out = image
    for axis in (0, 1):
        padded = np.pad(out, [(r, r) if a == axis else (0, 0) for a in range(2)], mode="reflect")
        length = out.shape[axis]
        out = sum(k * np.take(padded, np.arange(i, i + length), axis=axis) for i, k in enumerate(kernel))
    return out


def noise_autocorrelation(correlation: float) -> np.ndarray:
    """Autocorrelation at lags -2..2 of the noise model behind :func:`~napari_mpid.core.noise.estimate_noise`.

    That model blurs white noise by the kernel [s, 1, s] along each axis; its
    lag-1 correlation 2s / (1 + 2s^2) gives s, and the autocorrelation is
    separable: ``a(dy) * a(dx)``. FMD's wide-field noise fits it (lag-1 0.62,
    lag-2 0.23 measured against gt; the model gives 0.21 at that lag-1).
    """
    rho = float(np.clip(correlation, 0.0, 0.7))
    s = 0.0 if rho < 1e-3 else (1 - np.sqrt(max(1 - 2 * rho * rho, 0.0))) / (2 * rho)
    return np.array([s * s, 2 * s, 1 + 2 * s * s, 2 * s, s * s]) / (1 + 2 * s * s)


def blur_slope(sigma: float, correlation: float) -> float:
    """How much a Gaussian blur's output at a pixel follows that pixel's (correlated) noise.

    ``sum_d k(d) a(d)`` over the 2D kernel k and the noise autocorrelation a:
    the centre weight for white noise, more for correlated noise.
    """
    g = _gaussian_kernel(sigma)
    r = len(g) // 2
    return float(np.dot(g[r - 2 : r + 3], noise_autocorrelation(correlation)) ** 2)


def correlated_field(shape: tuple[int, ...], correlation: float, generator: torch.Generator, device) -> torch.Tensor:
    """Unit-variance noise ``(B, C, H, W)``, the same in every channel, with the autocorrelation of
    :func:`noise_autocorrelation` (white noise blurred by [s, 1, s] along each axis)."""
    rho = float(np.clip(correlation, 0.0, 0.7))
    s = 0.0 if rho < 1e-3 else (1 - np.sqrt(max(1 - 2 * rho * rho, 0.0))) / (2 * rho)
    b, c, h, w = shape
    white = torch.randn((b, 1, h + 2, w + 2), generator=generator, device=device)
    k = torch.tensor([s, 1.0, s], device=device, dtype=torch.float32) / float(np.sqrt(1 + 2 * s * s))
    field = torch.nn.functional.conv2d(white, k.view(1, 1, 3, 1))
    field = torch.nn.functional.conv2d(field, k.view(1, 1, 1, 3))
    return field.expand(b, c, h, w)


@dataclass(frozen=True)
class Combination:
    """How :func:`combine` mixed the predictions of a plane, with its estimated error."""

    weights: dict[str, float]
    offset: float
    held_out_error: float
    #: Candidates left out because they reproduce the plane's own noise (e.g. a duplicated frame).
    rejected: tuple[str, ...] = ()
    #: Estimated gain of the held-out mixture over the plane's own mix, in standard errors.
    evidence: float = 0.0
    #: Whether the held-out mix replaced the plane's own (all-pixel) mix.
    held_out_used: bool = False

    def shares(self) -> dict[str, float]:
        """Fraction of the result each candidate family produced (:data:`FAMILIES`), summing to 1.

        From the weights at the plane's mean intensity (the intensity terms
        average to zero over the plane); the offset is no candidate.
        """
        totals = dict.fromkeys(FAMILIES, 0.0)
        for name, w in self.weights.items():
            if not name.endswith(" x intensity"):
                totals[family_of(name)] += abs(w)
        whole = sum(totals.values())
        return {k: v / whole for k, v in totals.items()} if whole > 0 else totals

    def describe(self) -> str:
        # The intensity terms are per unit of intensity, not comparable with the weights.
        plain = {k: w for k, w in self.weights.items() if not k.endswith(" x intensity")}
        ranked = sorted(plain.items(), key=lambda kv: -abs(kv[1]))
        shown = ", ".join(f"{name} {w:+.2f}" for name, w in ranked[:5])
        if any(w != 0 for k, w in self.weights.items() if k.endswith(" x intensity")):
            shown += " (these at mean intensity; they follow the local intensity)"
        where = (
            f"held-out mix, gain {self.evidence:.1f} standard errors"
            if self.held_out_used
            else f"the plane's own mix (held-out mix {self.evidence:+.1f} standard errors)"
        )
        text = f"risk-minimising mix, {where} (estimated error {self.held_out_error:.3g}): {shown}"
        if self.rejected:
            text += f"; left out as not independent of the plane's noise: {', '.join(self.rejected)}"
        return text


def neighbour_candidates(
    plane_at: Callable[[int], np.ndarray],
    count: int,
    index: int,
    context: int,
    twin: Callable[[int, int], bool] | None = None,
) -> dict[str, np.ndarray]:
    """Predictions of plane ``index`` from the other planes of its stack alone, ``(C, H, W)`` each.

    ``plane_at(i)`` returns plane i of the ``count`` planes (only the
    neighbours are read, and all planes only for stacks of at most 16).

    The mean of the planes within 1..``context`` of it (reflected at the
    ends, never itself) and of all other planes of a short stack, each as it
    is and blurred (:data:`NEIGHBOUR_SIGMAS`). None of them involves the plane's own
    noise, so they are J-invariant: for a static series the mean of the
    other frames is the best of them, for a Z-stack a blurred mean of the
    nearest planes; :func:`combine` weighs them by what the data say.
    Copies of the plane (``twin(index, j)``, see
    :meth:`~napari_mpid.core.context.PlaneCache.twin`) are left out of every
    mean: they carry its noise.

    Drift: every other plane is also registered to this one
    (:mod:`~napari_mpid.core.registration`); where that moves any of a
    mean's planes by :data:`REGISTER_MIN` pixels or more, the mean of the
    moved planes joins as ``"<name>, registered"`` (with its blurs) beside
    the mean as it is, and the risk estimate weighs both. The shift depends
    on the plane's noise only through two numbers fitted on all its pixels.
    """
    from .context import neighbours
    from .registration import estimate_shift, shift_plane

    planes: dict[int, np.ndarray] = {}

    def plane(j: int) -> np.ndarray:
        if j not in planes:
            planes[j] = np.asarray(plane_at(j), dtype=np.float64)
        return planes[j]

    def distinct(j: int) -> bool:
        return twin is None or not twin(index, j)

    def aligned(j: int) -> np.ndarray | None:
        """Plane j moved onto the plane, or None where it would move less than REGISTER_MIN (or implausibly far)."""
        target, moving = plane(index), plane(j)
        shift = estimate_shift(target.sum(axis=0), moving.sum(axis=0))
        size = min(target.shape[-2:])
        if not REGISTER_MIN <= max(abs(shift[0]), abs(shift[1])) <= size / 4:
            return None
        return shift_plane(moving, shift)

    groups: dict[str, list[int]] = {}
    for d in range(1, context + 1):
        around = [j for j in neighbours(index, count, d, twin) if distinct(j)]
        if around:
            groups[f"neighbours {d}"] = around
    if 2 < count <= 16:
        others = [j for j in range(count) if j != index and distinct(j)]
        if others:
            groups["all others"] = others
    moved: dict[int, np.ndarray | None] = {}
    means: dict[str, np.ndarray] = {}
    for name, members in groups.items():
        means[name] = np.mean([plane(j) for j in members], axis=0)
        for j in members:
            if j not in moved:
                moved[j] = aligned(j)
        if any(moved[j] is not None for j in members):
            means[f"{name}, registered"] = np.mean(
                [plane(j) if moved[j] is None else moved[j] for j in members], axis=0
            )
    out = {}
    for name, mean in means.items():
        out[name] = mean
        for sigma in NEIGHBOUR_SIGMAS:
            g = _gaussian_kernel(sigma)
            out[f"{name}, blur {sigma:g}"] = np.stack([_convolve_separable(c, g) for c in mean])
    return out


def _nonnegative_quadratic(gram: np.ndarray, linear: np.ndarray, free: int) -> np.ndarray:
    """argmin of ``b' G b / 2 - b' h`` with ``b >= 0`` but for the entries from ``free`` on.

    Exact, by the active-set method of Lawson and Hanson written for the
    quadratic form: entries join the passive (unconstrained) set one at a
    time where the gradient says the objective would fall, and leave it when
    the unconstrained solution on that set would turn them negative. The
    blurs of one plane are nearly collinear, so a coordinate descent could
    stop far from the minimum within any fixed number of sweeps, the more so
    the further the plane's intensities are from zero (docs/benchmarks.md,
    "Weight rules of stage 1").
    """
    n = len(linear)
    constrained = np.arange(n) < free
    passive = ~constrained
    scale = max(float(np.abs(linear).max()), float(np.abs(np.diag(gram)).max()), 1e-300)
    tolerance = 1e-12 * scale

    def solve(active: np.ndarray) -> np.ndarray:
        out = np.zeros(n)
        index = np.flatnonzero(active)
        if len(index):
            out[index] = np.linalg.lstsq(gram[np.ix_(index, index)], linear[index], rcond=None)[0]
        return out

    b = solve(passive)
    for _ in range(3 * n + 10):
        gradient = linear - gram @ b
        entering = constrained & ~passive & (gradient > tolerance)
        if not entering.any():
            break
        passive[np.flatnonzero(entering)[np.argmax(gradient[entering])]] = True
        for _ in range(3 * n + 10):
            trial = solve(passive)
            negative = passive & constrained & (trial <= 0)
            if not negative.any():
                b = trial
                break
            # Step from b towards the trial solution until the first entry reaches zero.
            index = np.flatnonzero(negative)
            step = float(np.min(b[index] / np.maximum(b[index] - trial[index], 1e-300)))
            b = b + step * (trial - b)
            leaving = constrained & passive & (b <= tolerance)
            b[leaving] = 0.0
            passive &= ~leaving
    return b


def signal_dependent(pixel_variance: np.ndarray) -> bool:
    """Whether the noise-level line makes the noise variance differ enough across a plane to act on.

    The ratio of its 90th to its 10th percentile over the pixels must reach
    :data:`SIGNAL_DEPENDENT`: fluorescence planes lie far above it and
    constant Gaussian noise close to 1, where a small spurious slope of the
    line would mislead the intensity-dependent weights (the spreads
    measured by benchmarks/noise_estimate.py: docs/benchmarks.md, "Noise
    estimate").
    """
    low = float(np.percentile(pixel_variance, 10))
    return low > 0 and float(np.percentile(pixel_variance, 90)) >= SIGNAL_DEPENDENT * low


def plane_mix(
    noisy: np.ndarray, noise: NoiseEstimate, variance: float, independent: dict[str, np.ndarray] | None = None
) -> tuple[np.ndarray, float, dict[str, float]]:
    """The noisy plane, its Gaussian blurs and other planes, mixed to minimise Stein's unbiased risk estimate.

    Each blur follows a pixel's noise with a known slope (the kernel's
    weight on the noise, :func:`blur_slope`), and ``independent``
    predictions (means of other planes of a stack, whose noise is
    independent of this plane's) not at all, so their risk needs no
    held-out pixels: with every pixel of the plane the estimate is ~25
    times less noisy than on the 4 % held out, which matters on small planes
    (a 128x128 crop holds out ~650). The mix of this plane's blurs and of
    blurred neighbours spans 3-D blurs, and the mean of a static series and
    its blurs.

    For pixel-independent noise whose level depends on the signal
    (:func:`signal_dependent`), the weights of the noisy plane and of its
    sigma-1 and sigma-2 blurs may also change linearly with the local
    intensity (:data:`VARYING`): shot noise grows with the signal, so a dark
    background wants more smoothing than bright structure. The risk is then
    the heteroscedastic SURE, with every pixel's noise variance from the
    noise-level line (scaled to ``variance``) and the divergence of the
    intensity-weighted terms, which includes the local intensity's own
    dependence on the pixel.

    Returns the mixture, its slope (the mean divergence, weighted by the
    pixels' noise variance relative to ``variance``) and the weights
    (non-negative; the offset and the intensity terms are free).
    """
    rho = max(noise.correlation, 0.0)
    independent = independent or {}
    names = ["noisy", *(f"blur {s:g}" for s in COMBINE_SIGMAS), *independent]
    planes = [noisy] + [np.stack([_convolve_separable(c, _gaussian_kernel(s)) for c in noisy]) for s in COMBINE_SIGMAS]
    planes += list(independent.values())
    slopes = [1.0, *(blur_slope(s, rho) for s in COMBINE_SIGMAS), *([0.0] * len(independent))]
    x = noisy.ravel()
    n = x.size
    columns = [p.ravel() for p in planes] + [np.ones(n)]
    divergence = [np.full(n, d) for d in slopes] + [np.zeros(n)]
    free_names = ["offset"]
    pixel_variance = np.full(n, variance)
    line = np.asarray(noise.variance(x), dtype=np.float64)
    if rho < CORRELATED and VARYING and signal_dependent(line):
        kernel = _gaussian_kernel(2.0)
        own = kernel[len(kernel) // 2] ** 2  # the local intensity's weight on the pixel itself
        local = np.stack([_convolve_separable(c, kernel) for c in noisy]).ravel()
        local -= local.mean()
        pixel_variance = line * (variance / line.mean())
        for name in VARYING:
            i = names.index(name)
            columns.append(local * columns[i])
            divergence.append(own * columns[i] + local * slopes[i])
            free_names.append(f"{name} x intensity")
    design = np.stack(columns, axis=1)
    penalty = np.array([float(np.mean(pixel_variance * d)) for d in divergence])
    linear = design.T @ x / n - penalty
    coef = _nonnegative_quadratic(design.T @ design / n, linear, free=len(names))
    mixed = (design @ coef).reshape(noisy.shape)
    slope = float(penalty @ coef) / variance if variance > 0 else float(np.dot(slopes, coef[: len(slopes)]))
    return mixed, slope, {k: float(coef[i]) for i, k in enumerate([*names, *free_names])}


def combine(
    noisy: np.ndarray,
    candidates: dict[str, np.ndarray | tuple[np.ndarray, float]],
    held_out: np.ndarray,
    noise: NoiseEstimate,
    evidence: float = EVIDENCE,
    independent: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, Combination]:
    """The best linear mixture of predictions and of the noisy plane and its blurs.

    Two stages, both minimising Stein's unbiased risk estimate (SURE): for
    an estimate that follows a pixel's noise with slope ``d``,
    ``E|f - clean|^2 = E|f - noisy|^2 + 2 var d - var``.

    1. The noisy plane and its blurs (sigma 0.5-3), whose slopes are known,
       and the ``independent`` predictions (independent of the plane's noise
       at every pixel: means of other planes, see
       :func:`neighbour_candidates`) are mixed over all pixels
       (:func:`plane_mix`): the plane's own answer.
    2. ``candidates`` are predictions independent of the plane's own noise at
       the held-out pixels only (a filling or context prediction), or
       ``(prediction, slope)`` pairs for ones that follow it with a known
       slope. They, the plane's answer and the noisy plane are mixed
       on the held-out pixels, which is quadratic in the weights ``b``:
       ``(F'F / n) b = F'noisy / n - var d``, with ``b >= 0`` (blurs of one
       plane are nearly collinear, and free weights of +-3 exploited the
       estimate's own noise) and no offset (the plane's answer has one).

    The second stage is estimated on few pixels; its gain over the plane's
    answer, less Mallows' penalty for its weights, is measured in standard
    errors ``t`` of the per-pixel risk difference, and the result is
    ``s * mix + (1 - s) * plane`` with ``s = 1 - (evidence / t)^2`` (zero
    below ``t = evidence``): a positive-part James-Stein shrinkage, because
    an unguarded mixture fitted on so few pixels does worse than the
    plane's answer on average (docs/benchmarks.md, "Noise ladder").

    ``var`` is the mean noise variance from the noise-level function,
    bounded by the error against the plane of the best slope-0 candidate (a
    J-invariant prediction's error there is its own error plus the noise
    variance).
    """
    x = noisy[:, held_out].ravel()
    n = len(x)
    all_candidates: dict[str, tuple[np.ndarray, float]] = {
        name: c if isinstance(c, tuple) else (c, 0.0) for name, c in candidates.items()
    }
    # A prediction independent of the plane's noise cannot match the plane more
    # closely than the noise allows: one that does shares its noise (a duplicated
    # frame: FMD's WideField_BPAE_B captures 1 and 2 are the same file) and would
    # be taken for a perfect prediction.
    level = float(np.mean(noise.variance(x)))
    rejected = tuple(
        k
        for k, (c, slope) in all_candidates.items()
        if slope == 0.0 and float(np.mean((c[:, held_out].ravel() - x) ** 2)) < NOT_INDEPENDENT * level
    )
    others = dict(independent or {})
    everywhere = float(np.mean(noise.variance(noisy)))
    rejected += tuple(k for k, c in others.items() if float(np.mean((c - noisy) ** 2)) < NOT_INDEPENDENT * everywhere)
    # Blurs of a rejected mean share its noise too; a light blur passes the test above
    # (a sigma-0.5 blur of the plane itself keeps only ~40 % of its noise variance).
    rejected += tuple(k for k in others if k not in rejected and any(k.startswith(f"{r}, ") for r in rejected))
    for k in rejected:
        all_candidates.pop(k, None)
        others.pop(k, None)
    variance = everywhere
    invariant = [c for c, slope in all_candidates.values() if slope == 0.0]
    if invariant:
        variance = min(variance, min(float(np.mean((c[:, held_out].ravel() - x) ** 2)) for c in invariant))
    if others:
        variance = min(variance, min(float(np.mean((c - noisy) ** 2)) for c in others.values()))
    plane, plane_slope, plane_weights = plane_mix(noisy, noise, variance, others)
    plane_offset = plane_weights.pop("offset")
    names = list(all_candidates)
    # The noisy plane joins again on its own: a blind-spot prediction mixed with
    # the pixel's own value (the posterior mean of Laine et al. 2019 for Gaussian
    # noise and prior) is not in the span of the plane's blur mix. No offset here:
    # the plane's answer has one, fitted on all pixels.
    columns = [all_candidates[k][0][:, held_out].ravel() for k in names] + [plane[:, held_out].ravel(), x]
    design = np.stack(columns, axis=1)
    slopes = np.array([all_candidates[k][1] for k in names] + [plane_slope, 1.0])
    gram = design.T @ design / n
    coef = _nonnegative_quadratic(gram, design.T @ x / n - variance * slopes, free=len(names) + 2)
    # Per-pixel risk of the mixture minus that of the plane's answer alone, whose
    # weights were not fitted on these pixels; Mallows' penalty for the ones that were.
    difference = (design @ coef - x) ** 2 + 2 * variance * float(slopes @ coef)
    difference -= (plane[:, held_out].ravel() - x) ** 2 + 2 * variance * plane_slope
    gain = -float(difference.mean()) - 2 * variance * int(np.count_nonzero(coef)) / n
    error = float(difference.std()) / np.sqrt(n)
    plane_risk = float(np.mean((plane - noisy) ** 2)) + 2 * variance * plane_slope - variance
    # Shrink the held-out mix towards the plane's answer by its evidence t (gain
    # in standard errors): weight 1 - (evidence / t)^2, none below t = evidence.
    t = gain / error if error > 0 else (np.inf if gain > 0 else 0.0)
    share = float(np.clip(1.0 - (evidence / t) ** 2, 0.0, 1.0)) if names and t > 0 else 0.0
    used = share > 0
    weights = {k: 0.0 for k in names} | plane_weights
    mixed, risk, offset = plane, plane_risk, plane_offset
    if used:
        a, b = float(coef[-2]), float(coef[-1])
        held_mix = sum(coef[i] * all_candidates[k][0] for i, k in enumerate(names)) + a * plane + b * noisy
        mixed = share * held_mix + (1 - share) * plane
        weights = {k: share * float(coef[i]) for i, k in enumerate(names)}
        weights.update({k: (share * a + 1 - share) * w for k, w in plane_weights.items()})
        weights["noisy"] += share * b
        offset = (share * a + 1 - share) * plane_offset
        risk = plane_risk - share * gain
    return mixed, Combination(weights, offset, risk, rejected, float(t) if np.isfinite(t) else 0.0, used)
