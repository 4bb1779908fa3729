"""Intensity scales of a run: one per channel of a stack, fitted from its planes.

The policies themselves are in :mod:`napari_mpid.core.run.normalization`; this
module decides which values each scale is fitted on. Planes are read one at
a time (the source may be lazy: dask, zarr, a memory-mapped TIFF), and at
most :data:`MAX_SAMPLES` values are kept per channel, taken evenly from every
plane, so fitting never holds more than one plane and the sample in memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_mpid.core.run.normalization import IntensityScale, auto_scale, fit_scale, scale_from_sample
from napari_mpid.core.run.plan import Plan

__all__ = ["MAX_SAMPLES", "channel_of", "count_outside", "fit_scales"]

#: Values kept per channel to fit a percentile scale.
MAX_SAMPLES = 4_000_000


def channel_of(plan: Plan, plane: tuple[int, ...]) -> int:
    """Which scale a plane uses: its C index, or 0 without a C axis."""
    position = plan.channel_position
    return plane[position] if position is not None else 0


def _channels(plan: Plan) -> dict[int, list[tuple[int, ...]]]:
    groups: dict[int, list[tuple[int, ...]]] = {}
    for plane in plan.planes:
        groups.setdefault(channel_of(plan, plane), []).append(plane)
    return groups


def fit_scales(source: Any, plan: Plan, policy: str, notes: list[str] | None = None) -> dict[int, IntensityScale]:
    """Fit one :class:`IntensityScale` per channel of ``source`` (all planes of a channel share it).

    "dtype" and "none" need no data. "minmax" reads every plane for the exact
    range. "percentile" samples every plane of the channel evenly, keeping at
    most :data:`MAX_SAMPLES` values in all. ``outside`` is not counted here:
    the run counts out-of-range values plane by plane as it reads them.
    "auto" reads every plane for the exact range (see
    :func:`~napari_mpid.core.run.normalization.auto_scale`) and appends its
    reasons to ``notes`` when given.
    """
    dtype = np.dtype(getattr(source, "dtype", np.float64))
    scales: dict[int, IntensityScale] = {}
    reasons: dict[int, str] = {}
    for channel, planes in _channels(plan).items():
        if policy in ("dtype", "none"):
            scales[channel] = fit_scale(np.zeros(1, dtype=dtype), policy)
            continue
        per_plane = plan.height * plan.width * max(plan.samples, 1)
        step = max(1, -(-per_plane * len(planes) // MAX_SAMPLES))
        low, high, samples = np.inf, -np.inf, []
        for plane in planes:
            values = plan.read(source, plane).reshape(-1)
            low, high = min(low, float(values.min())), max(high, float(values.max()))
            if policy in ("percentile", "auto"):
                samples.append(values[::step])
        sample = np.concatenate(samples) if samples else None
        if policy == "auto":
            scales[channel], reasons[channel] = auto_scale(dtype, low, high, sample)
        else:
            scales[channel] = scale_from_sample(sample, low, high, policy)
    if notes is not None:
        notes.extend(sorted(set(f"intensity scale: {why}" for why in reasons.values())))
    return scales


def count_outside(plane: np.ndarray, scale: IntensityScale) -> int:
    """Values of a plane outside the scale's range (the network cannot reproduce them)."""
    return int(np.count_nonzero((plane < scale.low) | (plane > scale.high)))
