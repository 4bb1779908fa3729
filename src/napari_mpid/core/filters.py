"""Gaussian blurs in numpy alone: the candidates of the auto preset's mix."""

from __future__ import annotations

import numpy as np

__all__ = ["convolve_separable", "gaussian_kernel"]


def gaussian_kernel(sigma: float, minimum_radius: int = 2) -> np.ndarray:
    """Normalised 1-D Gaussian taps out to 4 sigma (at least ``minimum_radius`` on each side)."""
    radius = max(minimum_radius, int(np.ceil(4 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def convolve_separable(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2D convolution with ``outer(kernel, kernel)``, reflecting at the borders (numpy only)."""
    r = len(kernel) // 2
    out = image
    for axis in (0, 1):
        padded = np.pad(out, [(r, r) if a == axis else (0, 0) for a in range(2)], mode="reflect")
        length = out.shape[axis]
        out = sum(k * np.take(padded, np.arange(i, i + length), axis=axis) for i, k in enumerate(kernel))
    return out
