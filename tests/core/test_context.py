"""Context filling: neighbours, the zero-initialised extra inputs, the engine's stack mode."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from napari_mpid.core.engine import InputError, denoise_planes
from napari_mpid.core.fill.context import ContextFiller
from napari_mpid.core.fill.settings import FillSettings
from napari_mpid.core.fill.single import forward
from napari_mpid.core.model.checkpoints import load_model
from napari_mpid.core.model.network import network_input
from napari_mpid.core.params import preset
from napari_mpid.core.run.plan import DEFAULT_CONTEXT
from napari_mpid.core.run.stack import neighbours

from .helpers import filaments, run


@pytest.mark.parametrize(
    "index, count, context, expected",
    [
        (0, 5, 1, [1, 1]),  # reflected at the start, never itself
        (4, 5, 1, [3, 3]),
        (2, 5, 2, [0, 1, 3, 4]),
        (0, 5, 2, [2, 1, 1, 2]),
        (0, 2, 2, [1, 1, 1, 1]),  # two planes: always the other one
        (1, 3, 2, [0, 0, 2, 2]),
    ],
)
def test_neighbours_reflect_at_the_ends_and_never_include_the_plane_itself(index, count, context, expected):
    found = neighbours(index, count, context)
    assert found == expected
    assert index not in found


def test_before_fitting_the_context_network_is_the_plane_network():
    # Zero weights on the neighbours' inputs: same prediction whatever they hold.
    model = load_model("random-init:1:single", "cpu")
    cf = ContextFiller(model.network, model.state, 2, FillSettings(mask_ratio=0.85, learning_rate=2e-3))
    cf.network.load_state_dict(cf.initial_state)
    image = torch.rand(1, 1, 48, 48)
    keep = (torch.rand(1, 1, 48, 48) > 0.85).float()
    around = torch.rand(1, 4, 48, 48)
    model.network.load_state_dict(model.state)
    expected = forward(model.network.train(), network_input(image, keep), "float32", False)
    got = cf._predict(image, around, keep)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


@pytest.fixture
def stack():
    return np.random.default_rng(0).random((4, 48, 56)).astype(np.float32)


def test_context_zero_is_the_plane_by_plane_filling(stack):
    params = preset("fast", iterations=2, model="random-init:1:single")
    _, plain = run(denoise_planes(stack, params, axes="QYX"))  # no Z or T: context stays off
    _, zero = run(denoise_planes(stack, params.replace(context=0), axes="ZYX"))
    np.testing.assert_array_equal(plain.denoised, zero.denoised)
    assert zero.params.context == 0 and not zero.fitted


def test_automatic_context_turns_on_for_z_stacks(stack):
    params = preset("fast", iterations=2, model="random-init:1:single")
    steps, result = run(denoise_planes(stack, params, axes="ZYX"))
    assert result.params.context == DEFAULT_CONTEXT and result.params.context_axis == "Z"
    assert {s.stage for s in steps} == {"fit", "predict"}
    assert [s.number for s in steps if s.event == "plane"] == [0, 1, 2, 3]
    fractions = [s.fraction for s in steps]
    assert all(b >= a for a, b in itertools.pairwise(fractions)) and fractions[-1] == pytest.approx(1.0)
    assert any(f"context {DEFAULT_CONTEXT}" in note for note in result.notes)


def test_fitted_networks_let_a_subset_of_planes_match_the_full_run(stack):
    params = preset("fast", iterations=3, model="random-init:1:single", context=1)
    _, full = run(denoise_planes(stack, params, axes="ZYX"))
    out = np.zeros_like(stack)
    _, _part = run(denoise_planes(stack, params, axes="ZYX", planes=[2], out=out, fitted=full.fitted))
    np.testing.assert_array_equal(out[2], full.denoised[2])


@pytest.mark.parametrize(
    "axes, changes, message",
    [
        ("QYX", {"context": 1}, "needs a stack axis"),
        ("ZYX", {"context": 1, "context_axis": "T"}, "not an axis of the data"),
    ],
)
def test_bad_context_settings_are_refused_before_any_work(stack, axes, changes, message):
    with pytest.raises(InputError, match=message):
        next(denoise_planes(stack, preset("fast", iterations=2, model="random-init:1:single", **changes), axes=axes))


def test_a_single_plane_with_context_is_refused():
    plane = np.random.default_rng(1).random((48, 48)).astype(np.float32)
    with pytest.raises(InputError, match="needs a stack axis"):
        next(denoise_planes(plane, preset("fast", iterations=2, model="random-init:1:single", context=2)))
    _, result = run(denoise_planes(plane, preset("fast", iterations=2, model="random-init:1:single")))
    assert result.params.context == 0  # automatic: off for single planes


def test_context_prediction_follows_correlated_noise_of_its_own_plane_and_not_white_noise():
    # The held-out pixels stay hidden: under white noise nothing of their own noise reaches
    # them, under correlated noise their visible neighbours carry it (the slope combine() needs).
    from napari_mpid.core.run.stack import PlaneCache

    torch.manual_seed(0)
    model = load_model("real-noise", "cpu")  # a trained filler uses the pixels around a hidden one
    cf = ContextFiller(model.network, model.state, 1, FillSettings(mask_ratio=0.5, learning_rate=2e-3))
    cf.network.load_state_dict(cf.initial_state)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 72, 72, generator=torch.Generator().manual_seed(3)), 9, 1)
    data = [smooth * 0.5 + 0.25 for _ in range(3)]  # a smooth scene, the same in every plane
    planes = PlaneCache(lambda k: data[k], 3, torch.device("cpu"), budget=1 << 30)
    holdout = (torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(9)) < 0.1).float()

    def slope(correlation):
        gen = torch.Generator().manual_seed(1)
        return cf.probe_slope(planes, 1, correlation, 0.05, gen, holdout, passes=8)

    white, correlated = slope(0.0), slope(0.6)
    assert abs(white) < 0.1  # measured 0.03
    assert correlated > 0.3  # measured 0.90: at this mask ratio it nearly copies correlated noise


def _copies(i: int, j: int) -> bool:
    # Planes 0 and 1 of a 5-plane stack are one frame saved twice.
    return {i, j} == {0, 1}


@pytest.mark.parametrize(
    "index, count, context, expected",
    [
        (0, 5, 1, [2, 2]),  # plane 1 repeats plane 0: the next plane out takes its place
        (1, 5, 1, [2, 2]),  # reflected before plane 1 is plane 0 (a copy), then plane 1, then plane 2
        (0, 5, 2, [3, 2, 2, 3]),
        (2, 5, 1, [1, 3]),  # planes 0 and 1 are copies of each other, not of plane 2
    ],
)
def test_neighbours_pass_over_copies_of_the_plane(index, count, context, expected):
    found = neighbours(index, count, context, _copies)
    assert found == expected
    assert not any(_copies(index, j) for j in found)


def test_neighbours_of_a_stack_of_one_repeated_plane_stay_the_plain_ones():
    assert neighbours(0, 3, 1, lambda i, j: True) == neighbours(0, 3, 1)


def _textured_frames(count: int, noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clean = filaments()  # dense fine structure
    return np.stack([clean + rng.normal(0, noise, clean.shape) for _ in range(count)]).astype(np.float32)


def test_plane_cache_tells_a_copied_frame_from_an_independent_one():
    from napari_mpid.core.run.stack import PlaneCache

    frames = _textured_frames(4, 0.005)  # weak noise under dense texture: the hard case
    frames[2] = frames[0]
    frames[3] = np.round(frames[1] * 255) / 255  # a copy saved again as 8 bit
    cache = PlaneCache(lambda k: torch.from_numpy(frames[k])[None, None], 4, torch.device("cpu"), 2**24)
    assert cache.twin(0, 2) and cache.twin(2, 0)
    assert cache.twin(1, 3)
    assert not cache.twin(0, 1) and not cache.twin(1, 2) and not cache.twin(0, 3)


def test_a_copied_frame_reaches_neither_the_network_nor_the_neighbour_means():
    # A network that sees an unmasked copy of the plane learns to copy its noise.
    from napari_mpid.core.auto import neighbour_candidates
    from napari_mpid.core.run.stack import PlaneCache

    frames = _textured_frames(4, 0.05, seed=1)
    frames[1] = frames[0]
    cache = PlaneCache(lambda k: torch.from_numpy(frames[k])[None, None], 4, torch.device("cpu"), 2**24)
    model = load_model("random-init:1:single", "cpu")
    cf = ContextFiller(model.network, model.state, 1, FillSettings(mask_ratio=0.5, learning_rate=2e-3))
    center, around = cf._inputs(cache, 0)
    assert all(float((around[:, i] - center[:, 0]).abs().max()) > 0 for i in range(around.shape[1]))
    means = neighbour_candidates(lambda i: frames[i][None], 4, 0, 1, cache.twin)
    np.testing.assert_allclose(means["all others"][0], frames[2:].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(means["neighbours 1"][0], frames[2], rtol=1e-6)
