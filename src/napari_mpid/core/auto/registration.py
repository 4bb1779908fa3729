"""Lateral shifts between planes of a stack: estimate them and undo them (numpy only).

Time series drift: the stage or the sample moves, and a frame's neighbours
show its structures a pixel or two away. Means of misaligned neighbours are
poor predictions of the frame (docs/benchmarks.md, "Weight rules of stage
1": FMD frames drifting 1.5 px in Y and 1 px in X per frame, with and
without registered copies; benchmarks/mix_family.py). :func:`estimate_shift` finds the translation that best
aligns two planes, to a twentieth of a pixel, from their cross-correlation
(the peak of the FFT cross-correlation, refined by a discrete Fourier
transform evaluated on a finer grid around it, after Guizar-Sicairos,
Thurman & Fienup, Optics Letters 2008); :func:`shift_plane` moves a plane
by a fractional shift with cubic convolution (Keys 1981), reflecting at the
edges.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_SIDE", "estimate_shift", "shift_plane"]


#: Planes larger than this (per side) are registered on their centre: a global drift shows there
#: as well, and the work stays bounded.
MAX_SIDE = 512


def estimate_shift(reference: np.ndarray, moving: np.ndarray, upsample: int = 20) -> tuple[float, float]:
    """The shift (dy, dx) that moves ``moving`` onto ``reference`` (apply it with :func:`shift_plane`).

    Parameters
    ----------
    reference, moving : ndarray
        ``(H, W)`` planes of one shape (only the central :data:`MAX_SIDE`
        square of larger ones is used). Their means are removed and their
        edges tapered; noise in both is fine (it is independent between
        planes, so it does not favour any shift).
    upsample : int
        The result is a multiple of ``1 / upsample`` pixel.

    Returns
    -------
    (dy, dx) : tuple of float
        Signed, at most half the plane's size along each axis.
    """
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(moving, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"need two 2D planes of one shape, got {a.shape} and {b.shape}")
    start = [(n - min(n, MAX_SIDE)) // 2 for n in a.shape]
    centre = tuple(slice(s, s + min(n, MAX_SIDE)) for s, n in zip(start, a.shape))
    a, b = a[centre], b[centre]
    # A window that falls to zero over the outer quarter on each side: without it the planes'
    # edges (which do not wrap around) pull the peak towards zero shift.
    window = np.outer(_taper(a.shape[0]), _taper(a.shape[1]))
    spectrum = np.fft.fft2((a - a.mean()) * window) * np.conj(np.fft.fft2((b - b.mean()) * window))
    correlation = np.fft.ifft2(spectrum).real
    peak = np.array(np.unravel_index(int(np.argmax(correlation)), correlation.shape), dtype=np.float64)
    size = np.array(a.shape, dtype=np.float64)
    peak = np.where(peak > size // 2, peak - size, peak)  # signed lags
    if upsample <= 1:
        return float(peak[0]), float(peak[1])
    # Evaluate the cross-correlation on a grid 1/upsample apart, 1.5 px wide, around the peak.
    width = int(np.ceil(1.5 * upsample))
    offsets = (np.arange(width) - width // 2) / upsample
    rows = _fourier_rows(peak[0] + offsets, a.shape[0])
    cols = _fourier_rows(peak[1] + offsets, a.shape[1])
    fine = (rows @ spectrum @ cols.T).real
    i, j = np.unravel_index(int(np.argmax(fine)), fine.shape)
    return float(peak[0] + offsets[i]), float(peak[1] + offsets[j])


def _taper(n: int, share: float = 0.25) -> np.ndarray:
    """1 in the middle, a half cosine down to 0 over ``share`` of ``n`` at both ends (a Tukey window)."""
    edge = np.minimum(np.arange(n), n - 1 - np.arange(n)) / max(share * n, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(edge, 0.0, 1.0))


def _fourier_rows(positions: np.ndarray, n: int) -> np.ndarray:
    """``exp(2 pi i k p / n)`` for positions p (rows) and the FFT's frequencies k (columns)."""
    return np.exp(2j * np.pi * np.outer(positions, np.fft.fftfreq(n)))


def _cubic_weights(fraction: float) -> np.ndarray:
    """Keys' cubic convolution weights (a = -0.5) of the samples at -1, 0, 1, 2 for a point ``fraction`` past 0."""
    t = np.array([1 + fraction, fraction, 1 - fraction, 2 - fraction])
    a = -0.5
    near = (a + 2) * t**3 - (a + 3) * t**2 + 1
    far = a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return np.where(t <= 1, near, far)


def _shift_axis(plane: np.ndarray, shift: float, axis: int) -> np.ndarray:
    if shift == 0:
        return plane
    n = plane.shape[axis]
    # out[i] = plane(i - shift): the sample at i - shift, between floor and floor + 1.
    position = np.arange(n) - shift
    base = np.floor(position).astype(int)
    weights = _cubic_weights(float(position[0] - base[0]))
    out = np.zeros(plane.shape, dtype=np.float64)
    period = 2 * n
    for k, w in zip((-1, 0, 1, 2), weights):
        index = (base + k) % period
        index = np.where(index >= n, period - 1 - index, index)  # reflect: ... 1 0 | 0 1 ... n-1 | n-1 ...
        out += w * np.take(plane, index, axis=axis)
    return out


def shift_plane(plane: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """``plane`` (``(..., H, W)``) moved by ``shift`` = (dy, dx) pixels: ``out[y, x] = plane[y - dy, x - dx]``.

    Cubic convolution along each axis in turn; the plane is reflected at its
    edges (the half-sample reflection of ``scipy.ndimage``'s "reflect").
    """
    data = np.asarray(plane, dtype=np.float64)
    return _shift_axis(_shift_axis(data, float(shift[0]), data.ndim - 2), float(shift[1]), data.ndim - 1)
