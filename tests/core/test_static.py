"""static_scene: repeated exposures of one scene, averaged and denoised as one plane."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mpid.core.auto.registration import shift_plane
from napari_mpid.core.engine import InputError, denoise_planes
from napari_mpid.core.params import ParameterError, preset

from .helpers import run


def _exposures(gains=(1.0, 0.9, 1.1, 1.0), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth scene seen 4 times with flickering brightness and independent noise, in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:64, 0:64] / 64.0
    clean = 0.4 + 0.3 * np.sin(6 * x) * np.cos(4 * y)
    return np.stack([g * clean + rng.normal(0, 0.05, clean.shape) for g in gains]).astype(np.float32), clean


def _params(**changes):
    return preset("fast", iterations=3, model="random-init:1:single", normalization="none", **changes)


def test_every_plane_gets_the_denoised_mean_of_the_exposures():
    stack, _ = _exposures()
    before = stack.copy()
    _, result = run(denoise_planes(stack, _params(static_scene=True), axes="TYX"))
    _, mean = run(denoise_planes(stack.mean(axis=0), _params()))

    for k in range(4):
        np.testing.assert_array_equal(result.denoised[k], mean.denoised)  # same seed, same plane number
        np.testing.assert_allclose(result.noise_map[k], stack[k] - result.denoised[k], atol=1e-6)
    assert result.params.context == 0 and result.params.context_axis == "T"
    assert any("static scene: the 4 planes along T" in note for note in result.notes)
    assert not any("static" in w for w in result.warnings)
    np.testing.assert_array_equal(stack, before)  # the input is left as it was


def test_each_series_is_averaged_on_its_own():
    first, _ = _exposures(seed=1)
    second, _ = _exposures(gains=(0.5, 0.5, 0.5, 0.5), seed=2)
    data = np.stack([first, second])  # C, T, Y, X: two channels, four exposures each
    _, result = run(denoise_planes(data, _params(static_scene=True), axes="CTYX"))
    assert np.array_equal(result.denoised[0, 0], result.denoised[0, 3])
    assert np.array_equal(result.denoised[1, 0], result.denoised[1, 2])
    assert result.denoised[1].mean() < 0.7 * result.denoised[0].mean()


def test_a_plane_whose_scene_changed_is_reported():
    stack, clean = _exposures()
    stack[2] += 0.3 * (clean[::-1] - clean).astype(np.float32)  # the same place, other content
    _, result = run(denoise_planes(stack, _params(static_scene=True), axes="TYX"))
    assert any("may not be static" in w and "T=2" in w for w in result.warnings)


def _drifting_scene(shifts: list[tuple[float, float]]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Exposures of a textured scene moved by ``shifts`` (sub-pixel, cubic), with independent noise."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:96, 0:96] / 96.0
    clean = 0.3 + 0.2 * np.sin(19 * x) * np.cos(15 * y) + 0.3 * np.exp(-((x - 0.5) ** 2 + (y - 0.4) ** 2) / 0.01)
    truths = [shift_plane(clean, shift) for shift in shifts]
    return np.stack([t + rng.normal(0, 0.05, t.shape) for t in truths]).astype(np.float32), truths


def test_drifting_exposures_are_moved_onto_the_first_and_the_result_back_onto_each():
    shifts = [(0.0, 0.0), (1.5, 1.0), (3.0, 2.0), (4.5, 3.0)]
    stack, truths = _drifting_scene(shifts)
    before = stack.copy()
    params = preset("auto", network="never", normalization="none")

    _, result = run(denoise_planes(stack, params.replace(static_scene=True), axes="TYX"))
    _, unregistered = run(denoise_planes(stack.mean(axis=0), params))  # what averaging without registration gives

    inner = (slice(12, -12), slice(12, -12))  # away from the borders that moving reflects
    for k, truth in enumerate(truths):
        error = float(np.mean((result.denoised[k][inner] - truth[inner]) ** 2))
        assert error < 0.25 * 0.05**2  # better than one exposure's noise by more than averaging 4 alone
        if k:
            blurred = float(np.mean((unregistered.denoised[inner] - truth[inner]) ** 2))
            assert error < 0.5 * blurred
    assert any("3 of 4 exposures had drifted" in note for note in result.notes)
    assert not any("may not be static" in w for w in result.warnings)
    np.testing.assert_array_equal(stack, before)


def test_static_scene_needs_a_stack_axis_and_takes_no_context():
    stack, _ = _exposures()
    with pytest.raises(InputError, match="along a stack axis"):
        next(denoise_planes(stack[0], _params(static_scene=True)))
    with pytest.raises(InputError, match="needs at least 2 exposures"):
        next(denoise_planes(stack[:1], _params(static_scene=True), axes="TYX"))
    with pytest.raises(InputError, match="'Z' is not one"):
        next(denoise_planes(stack, _params(static_scene=True, context_axis="Z"), axes="TYX"))
    with pytest.raises(ParameterError, match="takes no context"):
        _params(static_scene=True, context=1)
