"""Spot photometry: the auto preset keeps the integrated intensity of sub-resolution spots.

Microscopists count and measure spots (single molecules, vesicles, puncta).
The paper's filling (fast, quality) dims such spots: a network that never
sees a pixel predicts it from its neighbours, and a spot smaller than the
optical resolution has none as bright as itself (docs/napari.md, "Small
bright spots"). The auto preset mixes the filling with the noisy plane and
its blurs where the held-out pixels say so, which keeps the spots' light.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_mpid.api import denoise
from napari_mpid.core.params import preset

BACKGROUND = 500.0
PEAK = 20_000.0


def spot_plane(size: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """A flat Poisson plane with three 3x3 spots: the clean plane, the noisy uint16 one, the spots' centres."""
    clean = np.full((size, size), BACKGROUND)
    centres = [(size // 4, size // 4), (size // 2, 3 * size // 4), (3 * size // 4, size // 3)]
    for y, x in centres:
        clean[y - 1 : y + 2, x - 1 : x + 2] = PEAK
    noisy = np.random.default_rng(seed).poisson(clean).astype(np.uint16)
    return clean, noisy, centres


def integrated_intensity(image: np.ndarray, centre: tuple[int, int]) -> float:
    """Sum of a 7x7 window over the spot minus its local background (median of the ring out to 11x11)."""
    y, x = centre
    outer = image[y - 5 : y + 6, x - 5 : x + 6].astype(np.float64)
    ring = np.ones(outer.shape, bool)
    ring[2:-2, 2:-2] = False
    window = image[y - 3 : y + 4, x - 3 : x + 4].astype(np.float64)
    return float((window - np.median(outer[ring])).sum())


def test_integrated_intensity_of_a_spot_is_measured_against_its_local_background():
    clean, _, centres = spot_plane()

    for centre in centres:
        assert integrated_intensity(clean, centre) == pytest.approx(9 * (PEAK - BACKGROUND))
        assert integrated_intensity(clean + 100.0, centre) == pytest.approx(9 * (PEAK - BACKGROUND))


@pytest.mark.slow
def test_auto_preset_keeps_the_integrated_intensity_of_sub_resolution_spots():
    clean, noisy, centres = spot_plane()
    before = noisy.copy()

    result = denoise(noisy, preset("auto", seed=0, device="cpu"))

    np.testing.assert_array_equal(noisy, before)  # the input is left alone
    for centre in centres:
        kept = integrated_intensity(result.denoised, centre) / integrated_intensity(clean, centre)
        assert kept == pytest.approx(1.0, abs=0.05), centre
