"""Registration of drifting planes: shift estimate, fractional shifts, registered neighbour means."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mpid.core.auto import combine, neighbour_candidates
from napari_mpid.core.auto.registration import estimate_shift, shift_plane
from napari_mpid.core.noise import NoiseEstimate

from .helpers import filaments


def _blobs(shift: tuple[float, float] = (0.0, 0.0), size: int = 128, seed: int = 0) -> np.ndarray:
    """Smooth Gaussian spots, drawn analytically at positions moved by ``shift``: an exact reference."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.full((size, size), 0.1)
    for cy, cx, width, height in zip(*rng.uniform([0, 0, 2, 0.2], [size, size, 5, 0.8], (60, 4)).T):
        out += height * np.exp(-((y - cy - shift[0]) ** 2 + (x - cx - shift[1]) ** 2) / (2 * width**2))
    return out


@pytest.mark.parametrize("shift", [(0.0, 0.0), (1.5, 1.0), (-2.25, 0.4), (0.3, -3.7), (4.5, 3.0)])
def test_the_shift_between_two_noisy_planes_is_found_within_a_fifth_of_a_pixel(shift):
    rng = np.random.default_rng(1)
    reference = _blobs(shift) + rng.normal(0, 0.03, (128, 128))
    moving = _blobs() + rng.normal(0, 0.03, (128, 128))
    found = estimate_shift(reference, moving)
    assert found == pytest.approx(shift, abs=0.2)  # spots enter and leave at the edges


def test_shifting_a_plane_reproduces_the_moved_scene():
    plane = _blobs()
    moved = shift_plane(plane, (1.5, -0.75))
    truth = _blobs((1.5, -0.75))
    inner = (slice(8, -8), slice(8, -8))  # away from the reflected edges
    assert np.abs(moved - truth)[inner].max() < 0.02 * truth.max()
    np.testing.assert_allclose(shift_plane(plane, (2.0, -3.0))[inner], np.roll(plane, (2, -3), axis=(0, 1))[inner])
    np.testing.assert_array_equal(shift_plane(plane, (0.0, 0.0)), plane)
    assert shift_plane(plane[None], (1.5, -0.75)).shape == (1, 128, 128)  # (C, H, W) too


def test_drifting_neighbours_are_registered_and_still_ones_are_not():
    rng = np.random.default_rng(2)
    drift = [_blobs((1.5 * k, 1.0 * k)) + rng.normal(0, 0.05, (128, 128)) for k in range(4)]
    still = [_blobs() + rng.normal(0, 0.05, (128, 128)) for _ in range(4)]
    moving = neighbour_candidates(lambda i: drift[i][None], 4, 1, 1)
    steady = neighbour_candidates(lambda i: still[i][None], 4, 1, 1)
    assert "neighbours 1, registered" in moving and "all others, registered, blur 1" in moving
    assert not any("registered" in name for name in steady)


def test_registered_neighbours_make_a_drifting_series_as_good_as_a_still_one():
    # The mix of a drifting frame with registered means of the others: far better than
    # with the misaligned means alone, and near a series that did not drift.
    rng = np.random.default_rng(3)
    sigma = 0.05
    noise = NoiseEstimate(sigma, 0.0, 0.0, sigma**2, sigma**2)
    held = rng.random((128, 128)) < 0.04
    clean = [_blobs((1.5 * k, 1.0 * k)) for k in range(4)]
    frames = [c + rng.normal(0, sigma, c.shape) for c in clean]
    found = neighbour_candidates(lambda i: frames[i][None], 4, 1, 1)
    registered, _ = combine(frames[1][None], {}, held, noise, independent=found)
    plain, _ = combine(
        frames[1][None], {}, held, noise, independent={k: v for k, v in found.items() if "registered" not in k}
    )

    def error(result):
        return float(np.mean((result[0] - clean[1])[8:-8, 8:-8] ** 2))

    still = [clean[1] + rng.normal(0, sigma, clean[1].shape) for _ in range(4)]
    around = neighbour_candidates(lambda i: still[i][None], 4, 1, 1)
    reference, _ = combine(still[1][None], {}, held, noise, independent=around)
    assert error(registered) < 0.7 * error(plain)
    assert error(registered) < 1.5 * error(reference)


def test_registration_works_on_dense_texture():
    # Weak noise over fine filaments: the peak is sharp, the shift exact to the grid.
    clean = filaments(128)
    rng = np.random.default_rng(4)
    moved = shift_plane(clean, (2.0, -1.0)) + rng.normal(0, 0.01, clean.shape)
    assert estimate_shift(moved, clean + rng.normal(0, 0.01, clean.shape)) == pytest.approx((2.0, -1.0), abs=0.1)
