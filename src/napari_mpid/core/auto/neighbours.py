"""Predictions of a plane from the other planes of its stack: means of neighbours, registered where they drifted."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from napari_mpid.core.auto.registration import estimate_shift, shift_plane
from napari_mpid.core.filters import convolve_separable, gaussian_kernel
from napari_mpid.core.run.stack import neighbours

__all__ = ["NEIGHBOUR_SIGMAS", "REGISTER_MIN", "neighbour_candidates", "plausible_shift"]

#: Blurs of the means of other planes (:func:`neighbour_candidates`): light ones let the mix
#: reproduce a lightly blurred mean of frames, the best baseline of a still series
#: (docs/constants.md).
NEIGHBOUR_SIGMAS = (0.5, 0.75, 1.0, 2.0)
#: Other planes that registration would move by less than this (pixels, along Y or X) are
#: used as they are: interpolating a plane smooths it, which costs more than a sub-pixel
#: misalignment (what chose the value, and the gain of registration above it: docs/constants.md).
REGISTER_MIN = 0.5


def plausible_shift(shift: tuple[float, float], shape: tuple[int, ...]) -> bool:
    """Whether a measured shift is worth applying to a plane of ``shape`` (``(..., H, W)``).

    From :data:`REGISTER_MIN` pixels along Y or X (less moves a plane by less
    than its interpolation costs) to a quarter of its smaller side (more is
    implausible between planes of one scene).
    """
    return REGISTER_MIN <= max(abs(shift[0]), abs(shift[1])) <= min(shape[-2:]) / 4


def neighbour_candidates(
    plane_at: Callable[[int], np.ndarray],
    count: int,
    index: int,
    context: int,
    twin: Callable[[int, int], bool] | None = None,
    denoise: Callable[[np.ndarray, int], np.ndarray] | None = None,
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
    :meth:`~napari_mpid.core.fill.context.PlaneCache.twin`) are left out of every
    mean: they carry its noise.

    Drift: every other plane is also registered to this one
    (:mod:`~napari_mpid.core.auto.registration`); where that moves any of a
    mean's planes by :data:`REGISTER_MIN` pixels or more, the mean of the
    moved planes joins as ``"<name>, registered"`` (with its blurs) beside
    the mean as it is, and the risk estimate weighs both. The shift depends
    on the plane's noise only through two numbers fitted on all its pixels.

    ``denoise(mean, members)``, where given
    (:func:`~napari_mpid.core.auto.mean_denoiser`), denoises the mean of the
    widest group (all others, else the farthest neighbours; its registered
    mean too) as a plane of its own: it joins as ``"<name>, denoised"``. A
    mean of a few planes still holds noise, and the blurs that remove it
    smooth the edges that a non-linear denoiser keeps.
    """
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
        if not plausible_shift(shift, target.shape):
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
    if denoise is not None and groups:
        # One group only: denoising a mean costs about as much as the plane's own mix.
        widest = max(groups, key=lambda k: len(set(groups[k])))
        members = len(set(groups[widest]))  # ends are reflected: a plane can be listed twice
        for name in (widest, f"{widest}, registered"):
            if name in means:
                out[f"{name}, denoised"] = denoise(means[name], members)
    for name, mean in means.items():
        out[name] = mean
        for sigma in NEIGHBOUR_SIGMAS:
            g = gaussian_kernel(sigma)
            out[f"{name}, blur {sigma:g}"] = np.stack([convolve_separable(c, g) for c in mean])
    return out
