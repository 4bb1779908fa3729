"""The risk-minimising mix: Stein's unbiased risk estimate over the noisy plane, its blurs and other predictions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from napari_mpid.core.auto.nonlinear import FAMILIES as NONLINEAR
from napari_mpid.core.auto.nonlinear import candidates as nonlinear_candidates
from napari_mpid.core.auto.policy import CORRELATED, signal_dependent
from napari_mpid.core.filters import convolve_separable, gaussian_kernel
from napari_mpid.core.noise import NoiseEstimate, noise_autocorrelation

__all__ = [
    "COMBINE_SIGMAS",
    "EVIDENCE",
    "FAMILIES",
    "FOLDS",
    "VARYING",
    "Combination",
    "blur_slope",
    "combine",
    "family_of",
    "fold_map",
    "mean_denoiser",
    "plane_mix",
]

#: Blurs of the noisy plane that :func:`combine` mixes in.
COMBINE_SIGMAS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
#: Terms of :func:`plane_mix` whose weight may change linearly with the local intensity
#: (pixel-independent noise only): the noisy plane and one light and one strong blur.
#: Varying every term instead fits the noise model's errors too (docs/constants.md).
VARYING = ("noisy", "blur 1", "blur 2")
#: A J-invariant candidate whose held-out error is below this fraction of the
#: estimated noise variance is taken to share the plane's noise and left out: an
#: independent one errs by at least the variance, and the estimate can read high on
#: textured planes, hence the margin (docs/constants.md).
NOT_INDEPENDENT = 0.1
#: :func:`combine` takes ``1 - (EVIDENCE / t)^2`` of its held-out mixture, t being the
#: mixture's estimated gain over the plane's own answer in standard errors (a positive-part
#: James-Stein rule; provenance: docs/constants.md).
EVIDENCE = 1.0
#: Folds of the held-out pixels in :func:`combine`'s second stage: the weights judged on
#: one fold are fitted on the others (cross-fitting), so no pixel judges a fit it made.
FOLDS = 4
#: Side of the square blocks of pixels that :func:`fold_map` deals to the folds whole:
#: correlated camera noise reaches a pixel or two, so neighbours stay in one fold.
FOLD_BLOCK = 8

#: Candidate name prefixes -> the family a result's summary credits them to.
_FAMILIES = (
    ("filling", "network"),
    ("context prediction", "network"),
    ("noisy", "noisy pixel"),
    ("blur", "blurs"),
    ("nlm", "non-local means"),
    ("band", "shrunk bands"),
)
#: Every family, in the order summaries list them.
FAMILIES = ("network", "neighbour planes", "non-local means", "shrunk bands", "blurs", "noisy pixel")


def family_of(candidate: str) -> str:
    """The family of a candidate of :func:`combine` ("network", "neighbour planes", "blurs", "noisy pixel")."""
    return next((family for prefix, family in _FAMILIES if candidate.startswith(prefix)), "neighbour planes")


def blur_slope(sigma: float, correlation: float, autocorrelation: np.ndarray | None = None) -> float:
    """How much a Gaussian blur's output at a pixel follows that pixel's (correlated) noise.

    ``sum_d k(d) a(d)`` over the 2D kernel k and the noise autocorrelation a:
    the centre weight for white noise, more for correlated noise. ``a`` is
    the [s, 1, s] model of ``correlation`` (separable, reaching 2 pixels)
    unless a measured ``autocorrelation`` is given (a calibration's:
    :mod:`napari_mpid.core.noise_profile`), whose lags beyond its reach count as 0.
    """
    g = gaussian_kernel(sigma)
    r = len(g) // 2
    if autocorrelation is None:
        return float(np.dot(g[r - 2 : r + 3], noise_autocorrelation(correlation)) ** 2)
    reach = autocorrelation.shape[0] // 2
    m = min(r, reach)
    k = g[r - m : r + m + 1]
    return float(k @ autocorrelation[reach - m : reach + m + 1, reach - m : reach + m + 1] @ k)


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
    #: Folds of the held-out pixels the evidence was computed on: with 2 or more, each
    #: fold's risk comes from weights fitted on the other folds (out of fold); with 1,
    #: the pixels that fitted the weights also judged them (in sample, Mallows' penalty).
    folds: int = FOLDS

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


def fold_map(shape: tuple[int, int], folds: int) -> np.ndarray:
    """The fold (0 to ``folds - 1``) of every pixel of a plane ``shape``: whole blocks, dealt at random.

    Blocks of :data:`FOLD_BLOCK` pixels square are shuffled by a fixed seed
    (the same map for the same shape, so results repeat) and dealt to the
    folds in turn, which balances the folds and spreads each over the plane.
    """
    if folds < 1:
        raise ValueError(f"folds must be at least 1, got {folds}")
    h, w = shape
    rows, cols = -(-h // FOLD_BLOCK), -(-w // FOLD_BLOCK)
    blocks = (np.random.default_rng(0).permutation(rows * cols) % folds).reshape(rows, cols)
    return np.repeat(np.repeat(blocks, FOLD_BLOCK, axis=0), FOLD_BLOCK, axis=1)[:h, :w]


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


def plane_mix(
    noisy: np.ndarray,
    noise: NoiseEstimate,
    variance: float,
    independent: dict[str, np.ndarray] | None = None,
    extra: dict[str, tuple[np.ndarray, float]] | None = None,
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

    ``extra`` maps a name to ``(candidate, D)``: a non-linear candidate and
    its divergence penalty in the plane's squared units
    (:func:`~napari_mpid.core.auto.nonlinear.candidates`), which enters as
    a candidate following the noise with slope ``D / variance``.

    Returns the mixture, its slope (the mean divergence, weighted by the
    pixels' noise variance relative to ``variance``) and the weights
    (non-negative; the offset and the intensity terms are free).
    """
    rho = max(noise.correlation, 0.0)
    independent = independent or {}
    extra = extra or {}
    names = ["noisy", *(f"blur {s:g}" for s in COMBINE_SIGMAS), *independent, *extra]
    acf = noise.autocorrelation
    slopes = [1.0, *(blur_slope(s, rho, acf) for s in COMBINE_SIGMAS), *([0.0] * len(independent))]
    slopes += [d / variance if variance > 0 else 0.0 for _, d in extra.values()]
    x = noisy.ravel()
    n = x.size
    line = np.asarray(noise.variance(x), dtype=np.float64)
    varying = rho < CORRELATED and bool(VARYING) and signal_dependent(line)
    free_names = ["offset", *(f"{name} x intensity" for name in (VARYING if varying else ()))]
    # One design matrix, filled column by column: on a large plane every copy of a column
    # costs 8 bytes per pixel, and the candidates already hold a dozen of them.
    design = np.empty((n, len(names) + len(free_names)))
    design[:, 0] = x
    for k, s in enumerate(COMBINE_SIGMAS, start=1):
        design[:, k] = np.stack([convolve_separable(c, gaussian_kernel(s)) for c in noisy]).ravel()
    for k, plane in enumerate([*independent.values(), *(c for c, _ in extra.values())], start=1 + len(COMBINE_SIGMAS)):
        design[:, k] = plane.ravel()
    design[:, len(names)] = 1.0
    # A candidate that follows every pixel's noise with the same slope d has penalty d times the
    # mean of the pixels' variance; the intensity terms' slopes change from pixel to pixel.
    mean_variance = variance
    penalty = [mean_variance * d for d in slopes] + [0.0]
    if varying:
        kernel = gaussian_kernel(2.0)
        own = kernel[len(kernel) // 2] ** 2  # the local intensity's weight on the pixel itself
        local = np.stack([convolve_separable(c, kernel) for c in noisy]).ravel()
        local -= local.mean()
        pixel_variance = line * (variance / line.mean())
        mean_variance = float(np.mean(pixel_variance))
        penalty = [mean_variance * d for d in slopes] + [0.0]
        for j, name in enumerate(VARYING, start=len(names) + 1):
            i = names.index(name)
            design[:, j] = local * design[:, i]
            penalty.append(float(np.mean(pixel_variance * (own * design[:, i] + local * slopes[i]))))
    penalty = np.array(penalty)
    linear = design.T @ x / n - penalty
    coef = _nonnegative_quadratic(design.T @ design / n, linear, free=len(names))
    mixed = (design @ coef).reshape(noisy.shape)
    slope = float(penalty @ coef) / variance if variance > 0 else float(np.dot(slopes, coef[: len(slopes)]))
    return mixed, slope, {k: float(coef[i]) for i, k in enumerate([*names, *free_names])}


def mean_denoiser(
    noise: NoiseEstimate, families: tuple[str, ...] = NONLINEAR
) -> Callable[[np.ndarray, int], np.ndarray]:
    """A denoiser of means of other planes, for :func:`~napari_mpid.core.auto.neighbour_candidates`.

    The returned ``denoise(mean, members)`` mixes the mean of ``members``
    other planes as a plane of its own (:func:`plane_mix` with the
    non-linear candidates), its noise taken as the plane's noise-level line
    (``noise``) divided by ``members``: the planes' noise is independent,
    and a line measured on the mean itself would read its texture, which
    stands ``members`` times higher above the noise variance than on one
    plane, partly as noise (the estimate reads high on weakly noisy
    textured planes). Nothing of the plane's own noise enters, so the
    result is a J-invariant candidate like the mean itself; unlike the
    mean's blurs, NL-means of the mean keep edges that a blur strong
    enough for its noise smooths away. ``families``: the non-linear
    candidates of the mean's mix (as :func:`combine`'s ``nonlinear``).
    Registered means are treated alike, although interpolation has
    smoothed some of their noise (the line then reads a little high).
    """

    def denoise(mean: np.ndarray, members: int) -> np.ndarray:
        scaled = noise.averaged(members)
        variance = float(np.mean(scaled.variance(mean)))
        mixed, _, _ = plane_mix(mean, scaled, variance, extra=nonlinear_candidates(mean, scaled, variance, families))
        return mixed

    return denoise


def _held_out_weights(design: np.ndarray, x: np.ndarray, slopes: np.ndarray, variance: float) -> np.ndarray:
    """Non-negative weights of ``design``'s columns minimising SURE against ``x`` (noise ``variance``)."""
    n = len(x)
    return _nonnegative_quadratic(design.T @ design / n, design.T @ x / n - variance * slopes, free=len(slopes))


def _risk_change(
    design: np.ndarray, x: np.ndarray, slopes: np.ndarray, coef: np.ndarray, variance: float
) -> np.ndarray:
    """Per-pixel SURE of the mixture ``coef`` minus that of the plane's answer (the last column but one) alone."""
    mixture = (design @ coef - x) ** 2 + 2 * variance * float(slopes @ coef)
    return mixture - ((design[:, -2] - x) ** 2 + 2 * variance * float(slopes[-2]))


def _cross_fitted(
    design: np.ndarray, x: np.ndarray, slopes: np.ndarray, fold: np.ndarray, bounded: Callable[[np.ndarray], float]
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Out-of-fold risk changes of :func:`combine`'s second stage, and the weights fitted for every fold.

    Each fold's per-pixel risk change (:func:`_risk_change`) is taken for
    the weights and the noise variance (``bounded`` of the other folds'
    pixels) fitted on the other folds, whose noise is independent of its
    own: an unbiased estimate of the gain of a fit on ``(K - 1) / K`` of the
    pixels, a little pessimistic for the fit on all of them that is used.
    Empty when fewer than two folds hold pixels.
    """
    pieces, fits = [], {}
    for k in np.unique(fold):
        inside = fold == k
        if inside.all():
            break
        v = bounded(~inside)
        fits[int(k)] = coef = _held_out_weights(design[~inside], x[~inside], slopes, v)
        pieces.append(_risk_change(design[inside], x[inside], slopes, coef, v))
    return (np.concatenate(pieces) if pieces else np.zeros(0)), fits


def combine(
    noisy: np.ndarray,
    candidates: dict[str, np.ndarray | tuple[np.ndarray, float]],
    held_out: np.ndarray,
    noise: NoiseEstimate,
    evidence: float = EVIDENCE,
    independent: dict[str, np.ndarray] | None = None,
    nonlinear: tuple[str, ...] = NONLINEAR,
    folds: int = FOLDS,
) -> tuple[np.ndarray, Combination]:
    """The best linear mixture of predictions and of the noisy plane and its blurs.

    Two stages, both minimising Stein's unbiased risk estimate (SURE): for
    an estimate that follows a pixel's noise with slope ``d``,
    ``E|f - clean|^2 = E|f - noisy|^2 + 2 var d - var``.

    1. The noisy plane and its blurs (sigma 0.5-3), whose slopes are known,
       the ``independent`` predictions (independent of the plane's noise
       at every pixel: means of other planes, see
       :func:`neighbour_candidates`) and the ``nonlinear`` families, NL-means
       and shrunk bands of the plane (their slopes measured by Monte-Carlo,
       :mod:`~napari_mpid.core.auto.nonlinear`) are mixed over all pixels
       (:func:`plane_mix`): the plane's own answer.
    2. ``candidates`` are predictions independent of the plane's own noise at
       the held-out pixels only (a filling or context prediction), or
       ``(prediction, slope)`` pairs for ones that follow it with a known
       slope. They, the plane's answer and the noisy plane are mixed
       on the held-out pixels, which is quadratic in the weights ``b``:
       ``(F'F / n) b = F'noisy / n - var d``, with ``b >= 0`` (blurs of one
       plane are nearly collinear, and free weights of +-3 exploited the
       estimate's own noise) and no offset (the plane's answer has one).

    The second stage is estimated on few pixels. Its gain over the plane's
    answer is measured by cross-fitting: the held-out pixels are dealt to
    ``folds`` folds in blocks (:func:`fold_map`), and each fold's per-pixel
    risk difference is taken for the weights (and the variance bound below)
    fitted on the other folds, so no pixel judges a fit it took part in.
    That gain, in standard errors ``t`` of the per-pixel risk difference,
    sets the result ``s * mix + (1 - s) * plane`` with
    ``s = 1 - (evidence / t)^2`` (zero below ``t = evidence``): a
    positive-part James-Stein shrinkage, because an unguarded mixture fitted
    on so few pixels does worse than the plane's answer on average
    (docs/benchmarks.md, "Noise ladder"). ``mix`` itself is fitted on all
    held-out pixels. ``folds=1`` judges the fit on its own pixels, less
    Mallows' penalty for its weights (the rule before cross-fitting, kept
    for comparison).

    ``var`` is the mean noise variance from the noise-level function,
    bounded by the error against the plane of the best slope-0 candidate (a
    J-invariant prediction's error there is its own error plus the noise
    variance).
    """
    if folds < 1:
        raise ValueError(f"folds must be at least 1, got {folds}")
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
    # A prediction independent of the plane's noise errs by at least the noise variance.
    bound = everywhere
    if others:
        bound = min(bound, min(float(np.mean((c - noisy) ** 2)) for c in others.values()))
    invariant = [c[:, held_out].ravel() for c, slope in all_candidates.values() if slope == 0.0]

    def bounded(pixels: slice | np.ndarray) -> float:
        """The noise variance, bounded by the slope-0 candidates' error on the held-out ``pixels``."""
        return min([bound, *(float(np.mean((c[pixels] - x[pixels]) ** 2)) for c in invariant)])

    variance = bounded(slice(None))
    extra = nonlinear_candidates(noisy, noise, variance, nonlinear) if nonlinear else {}
    plane, plane_slope, plane_weights = plane_mix(noisy, noise, variance, others, extra)
    plane_offset = plane_weights.pop("offset")
    names = list(all_candidates)
    # The noisy plane joins again on its own: a blind-spot prediction mixed with
    # the pixel's own value (the posterior mean of Laine et al. 2019 for Gaussian
    # noise and prior) is not in the span of the plane's blur mix. No offset here:
    # the plane's answer has one, fitted on all pixels.
    columns = [all_candidates[k][0][:, held_out].ravel() for k in names] + [plane[:, held_out].ravel(), x]
    design = np.stack(columns, axis=1)
    slopes = np.array([all_candidates[k][1] for k in names] + [plane_slope, 1.0])
    coef = _held_out_weights(design, x, slopes, variance)
    if folds == 1:
        # In sample: the pixels that fitted the weights judge them, less Mallows' penalty.
        difference = _risk_change(design, x, slopes, coef, variance)
        gain = -float(difference.mean()) - 2 * variance * int(np.count_nonzero(coef)) / n
    else:
        fold = np.tile(fold_map(noisy.shape[1:], folds)[held_out], noisy.shape[0])
        difference, _ = _cross_fitted(design, x, slopes, fold, bounded)
        gain = -float(difference.mean()) if len(difference) else 0.0
    error = float(difference.std()) / np.sqrt(len(difference)) if len(difference) else 0.0
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
    return mixed, Combination(weights, offset, risk, rejected, float(t) if np.isfinite(t) else 0.0, used, folds)
