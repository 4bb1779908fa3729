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
from napari_mpid.synthetic import SPOT_BACKGROUND, SPOT_PEAK, spot_photometry, spot_plane

BACKGROUND, PEAK = SPOT_BACKGROUND, SPOT_PEAK


def integrated_intensity(image: np.ndarray, centre: tuple[int, int]) -> float:
    return spot_photometry(image, centre)[0]


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
