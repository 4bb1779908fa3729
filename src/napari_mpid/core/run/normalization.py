"""Mapping microscopy intensities to the network's [0, 1] range and back.

The network ends in a sigmoid and was pre-trained on images in [0, 1], so a
plane must be scaled before filling and the result scaled back to the
input's units. Policies (``FillParams.normalization``):

``"auto"`` (default)
    8-bit integer data (uint8) are divided by 255, the paper's scaling: a
    dim 8-bit image stays dim, and stretching it to the full [0, 1] range
    lost quality on FMD (docs/benchmarks.md, "Intensity scaling"). Wider
    integers (a camera's 12- or 16-bit images, with their offset of ~100
    counts and a signal that uses a small part of the range) use
    "percentile": divided by their bit depth, a dim camera stack fills a
    sliver of [0, 1] and the network denoises it far worse, the more so with
    context filling (benchmarks/scaling_camera.py). Float data already
    within [0, 1] are used as they are; other floats, and integers with
    negative values, use "percentile".
``"percentile"``
    low/high = the 0.1st/99.9th percentiles, widened by 10 % of their span on
    each side. Hot pixels and empty background do not squash the contrast of
    the structures. Pixels still outside the widened range are *not* clipped
    from the input, but the network cannot predict values outside [0, 1]: the
    filling pulls them back into range. :func:`fit_scale` counts them and the
    result carries a warning naming the count, so it never happens silently.
``"minmax"``
    The exact data range: nothing can fall outside, at the price of contrast
    when a few pixels are extreme.
``"dtype"``
    The full range of an integer dtype (0-255 for uint8, the paper's /255).
``"none"``
    Values are used as they are (the caller promises [0, 1]).

One scale is fitted per channel of a stack (not per plane), so a z-stack or
time series keeps consistent intensities from plane to plane.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["IntensityScale", "auto_scale", "fit_scale", "scale_from_sample"]

#: Percentiles of the "percentile" policy and the headroom added on each side.
PERCENTILES = (0.1, 99.9)
HEADROOM = 0.10
#: At most this many values are looked at to estimate percentiles.
_MAX_SAMPLES = 4_000_000


@dataclass(frozen=True)
class IntensityScale:
    """An affine map ``(x - low) / (high - low)`` and its inverse.

    Attributes
    ----------
    low, high : float
        Input values mapped to 0 and 1.
    outside : int
        Number of input values outside [low, high] (see module doc).
    """

    low: float
    high: float
    outside: int = 0

    def forward(self, data: np.ndarray) -> np.ndarray:
        """Scaled float32 copy of ``data``."""
        return ((np.asarray(data, dtype=np.float64) - self.low) / (self.high - self.low)).astype(np.float32)

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        """Back to the input's units, float32."""
        return (np.asarray(scaled, dtype=np.float64) * (self.high - self.low) + self.low).astype(np.float32)


def _sample(data: np.ndarray) -> np.ndarray:
    flat = data.reshape(-1)
    step = max(1, flat.size // _MAX_SAMPLES)
    return flat[::step]


def fit_scale(data: np.ndarray, policy: str = "percentile") -> IntensityScale:
    """Fit the intensity scale of ``data`` (any dtype, any shape).

    Raises
    ------
    ValueError
        Unknown policy. ("dtype" on a float array falls back to "none": values used as they are.)
    """
    if policy == "none":
        return IntensityScale(0.0, 1.0, int(np.count_nonzero((data < 0) | (data > 1))))
    if policy == "auto":
        data = np.asarray(data)
        low, high = float(np.min(data)), float(np.max(data))
        scale, _ = auto_scale(data.dtype, low, high, _sample(data))
        outside = int(np.count_nonzero((data < scale.low) | (data > scale.high)))
        return IntensityScale(scale.low, scale.high, outside)
    if policy == "dtype":
        if np.issubdtype(data.dtype, np.integer):
            info = np.iinfo(data.dtype)
            return IntensityScale(float(info.min), float(info.max), 0)
        if np.issubdtype(data.dtype, np.bool_):
            return IntensityScale(0.0, 1.0, 0)
        return fit_scale(data, "none")
    sample = _sample(data) if policy == "percentile" else None
    scale = scale_from_sample(sample, float(np.min(data)), float(np.max(data)), policy)
    outside = int(np.count_nonzero((data < scale.low) | (data > scale.high))) if policy == "percentile" else 0
    return IntensityScale(scale.low, scale.high, outside)


def scale_from_sample(sample: np.ndarray | None, low: float, high: float, policy: str) -> IntensityScale:
    """The "percentile" or "minmax" scale from a sample of values and the exact data range.

    ``outside`` is left at 0 (the caller counts it on the data).
    """
    if policy == "percentile":
        p_lo, p_hi = np.percentile(np.asarray(sample, dtype=np.float64), PERCENTILES)
        span = p_hi - p_lo
        if span > 0:
            return IntensityScale(float(p_lo - HEADROOM * span), float(p_hi + HEADROOM * span), 0)
        # Fewer than ~0.2 % of pixels differ from the rest: fall back to min/max.
    elif policy != "minmax":
        raise ValueError(f"unknown normalization {policy!r}")
    if high == low:  # constant data: any scale works, keep the values exact
        return IntensityScale(low - 0.5, low + 0.5, 0)
    return IntensityScale(low, high, 0)


def auto_scale(dtype: np.dtype, low: float, high: float, sample: np.ndarray | None) -> tuple[IntensityScale, str]:
    """The "auto" policy: a scale from the dtype and the exact data range, and the reason.

    Parameters
    ----------
    dtype : numpy dtype
        The data's type.
    low, high : float
        The exact minimum and maximum of the data.
    sample : ndarray or None
        Values to fit a "percentile" scale on when that is the rule's answer.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return IntensityScale(0.0, 1.0, 0), "boolean data as 0 and 1"
    if dtype.kind in "ui" and dtype.itemsize == 1 and low >= 0:
        return IntensityScale(0.0, 255.0, 0), f"8-bit range 0-255 of {dtype} data (the paper's /255)"
    if dtype.kind == "f" and low >= 0.0 and high <= 1.0:
        return IntensityScale(0.0, 1.0, 0), "float data already in [0, 1]"
    scale = scale_from_sample(sample, low, high, "percentile")
    if dtype.kind in "ui":
        kind = "negative integer values" if low < 0 else f"{dtype} data wider than 8 bits"
    else:
        kind = "float data outside [0, 1]"
    return scale, f"percentiles with headroom ({kind})"
