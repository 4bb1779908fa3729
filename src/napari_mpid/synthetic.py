"""A procedural fluorescence sample with a known clean version (numpy only).

Used as the offline sample data of the plugin, the demo of the CLI and in
tests: cells with nuclei and filament networks, blurred by a Gaussian
point-spread function, imaged with Poisson (shot) and Gaussian (read) noise
on a camera offset, as a uint16 z-stack. Nothing here comes from a real
dataset.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SPOT_BACKGROUND", "SPOT_PEAK", "fluorescence_stack", "spot_photometry", "spot_plane"]

#: :func:`spot_plane`: the flat background and the spots' peak, in photons.
SPOT_BACKGROUND = 500.0
SPOT_PEAK = 20_000.0


def _gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with reflective borders (FFT-free, numpy only)."""
    radius = max(1, int(3 * sigma))
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    out = image
    for axis in (-2, -1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="reflect")
        out = sum(kernel[i] * np.take(padded, np.arange(i, i + out.shape[axis]), axis=axis) for i in range(len(kernel)))
    return out


def fluorescence_stack(
    planes: int = 5,
    size: int = 256,
    *,
    photons: float = 30.0,
    read_noise: float = 3.0,
    offset: float = 100.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Render a noisy fluorescence z-stack and its clean version.

    Parameters
    ----------
    planes : int
        Number of z-planes.
    size : int
        Side of each plane in pixels.
    photons : float
        Expected photon count at the brightest structures (lower = noisier).
    read_noise : float
        Camera read noise (standard deviation, in counts).
    offset : float
        Camera offset added to every pixel (counts).
    seed : int
        Random seed; the same seed gives the same sample.

    Returns
    -------
    noisy : ndarray of uint16, shape (planes, size, size)
    clean : ndarray of float32, same shape, the expected counts without noise
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    volume = np.zeros((planes, size, size))
    n_cells = max(3, size * size // 6000)
    for _ in range(n_cells):
        cy, cx = rng.uniform(0.1, 0.9, 2) * size
        cz = rng.uniform(0, planes - 1) if planes > 1 else 0.0
        ry, rx = rng.uniform(0.05, 0.11, 2) * size
        angle = rng.uniform(0, np.pi)
        ca, sa = np.cos(angle), np.sin(angle)
        u = ((yy - cy) * ca + (xx - cx) * sa) / ry
        v = (-(yy - cy) * sa + (xx - cx) * ca) / rx
        body = np.clip(1.0 - (u**2 + v**2), 0, None) ** 0.5
        nucleus = np.clip(1.0 - ((u * 2.2) ** 2 + (v * 2.2) ** 2), 0, None) ** 0.5
        # Filaments: a few random walks from the cell centre, thin and bright.
        fil = np.zeros((size, size))
        for _ in range(6):
            py, px = cy, cx
            heading = rng.uniform(0, 2 * np.pi)
            for _ in range(int(1.5 * max(ry, rx))):
                heading += rng.normal(0, 0.15)
                py += np.sin(heading)
                px += np.cos(heading)
                iy, ix = round(py), round(px)
                if 0 <= iy < size and 0 <= ix < size:
                    fil[iy, ix] = 1.0
        for z in range(planes):
            dz = (z - cz) / max(planes / 3, 1.0)
            focus = np.exp(-0.5 * dz**2)
            volume[z] += focus * (0.35 * body + 0.5 * nucleus + 1.2 * fil * (body > 0))
    volume = _gaussian_blur(volume, 1.2)
    volume /= max(volume.max(), 1e-9)
    clean = offset + photons * (volume + 0.03)
    noisy = rng.poisson(photons * (volume + 0.03)) + offset + rng.normal(0, read_noise, volume.shape)
    noisy = np.clip(np.round(noisy), 0, 65535).astype(np.uint16)
    return noisy, clean.astype(np.float32)


def spot_plane(size: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """A flat Poisson plane with three 3x3 spots below the optical resolution, to check photometry.

    Returns the clean plane (background :data:`SPOT_BACKGROUND`, spots
    :data:`SPOT_PEAK`), its Poisson-noisy uint16 version and the spots' centres.
    """
    clean = np.full((size, size), SPOT_BACKGROUND)
    centres = [(size // 4, size // 4), (size // 2, 3 * size // 4), (3 * size // 4, size // 3)]
    for y, x in centres:
        clean[y - 1 : y + 2, x - 1 : x + 2] = SPOT_PEAK
    noisy = np.random.default_rng(seed).poisson(clean).astype(np.uint16)
    return clean, noisy, centres


def spot_photometry(image: np.ndarray, centre: tuple[int, int]) -> tuple[float, float]:
    """Integrated intensity (7x7 window) and peak of one spot, over its local background.

    The background is the median of the ring between the 7x7 window and the
    11x11 one around ``centre``.
    """
    y, x = centre
    outer = image[y - 5 : y + 6, x - 5 : x + 6].astype(np.float64)
    ring = np.ones(outer.shape, bool)
    ring[2:-2, 2:-2] = False
    background = float(np.median(outer[ring]))
    window = image[y - 3 : y + 4, x - 3 : x + 4].astype(np.float64)
    peak = float(image[y - 1 : y + 2, x - 1 : x + 2].max())
    return float((window - background).sum()), peak - background
