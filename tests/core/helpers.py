"""Helpers shared by the core tests."""

from __future__ import annotations

import numpy as np

from napari_mpid.core.steps import run_to_end


def run(gen):
    """Run a denoising generator to the end; return (progress list, result)."""
    steps: list = []
    return steps, run_to_end(gen, steps.append)


def filaments(size: int = 256, seed: int = 9) -> np.ndarray:
    """Dense fine structure in [0.1, 0.7]: many thin random filaments, as in a cytoskeleton stain."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size), 0.1)
    t = np.linspace(0, 1, 400)
    for _ in range(300):
        y0, x0, y1, x1 = rng.uniform(0, size, 4)
        bend = rng.normal(0, 30, 2)
        ys = (y0 + (y1 - y0) * t + bend[0] * np.sin(np.pi * t)).astype(int) % size
        xs = (x0 + (x1 - x0) * t + bend[1] * np.sin(np.pi * t)).astype(int) % size
        image[ys, xs] += rng.uniform(0.01, 0.04)
    k = np.array([0.25, 0.5, 0.25])  # an optical blur of about one pixel
    for axis in (0, 1):
        image = sum(w * np.roll(image, s, axis=axis) for w, s in zip(k, (-1, 0, 1)))
    return np.clip(image, 0, 0.7)
