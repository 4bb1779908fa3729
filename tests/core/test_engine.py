from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from napari_mpid.core.engine import InputError, Progress, denoise_planes, resolve_axes
from napari_mpid.core.params import preset

from .helpers import run


@pytest.fixture
def params(tiny_model):
    return preset("fast", iterations=2, model=tiny_model)


@pytest.mark.parametrize(
    "shape, axes, expected",
    [
        ((64, 64), None, "YX"),
        ((64, 64, 3), None, "YXS"),
        ((5, 64, 64), None, "QYX"),
        ((2, 3, 64, 64), "tcyx", "TCYX"),
        ((64, 3, 64), "YSX", "YSX"),
    ],
)
def test_axes_are_guessed_or_validated(shape, axes, expected):
    assert resolve_axes(shape, axes) == expected


@pytest.mark.parametrize(
    "shape, axes, message",
    [
        ((64, 64), "ZYX", "3 letters but the array has 2"),
        ((4, 64, 64), "ZYW", "unknown axis letter"),
        ((4, 64, 64), "ZZX", "must contain Y and X|appears twice"),
        ((64, 64, 5), "YXS", "3 \\(RGB\\) or 4"),
        ((64,), None, "not an image"),
    ],
)
def test_bad_axes_are_refused(shape, axes, message):
    with pytest.raises(InputError, match=message):
        resolve_axes(shape, axes)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64])
def test_any_dtype_gives_float32_outputs_in_input_units(params, dtype):
    rng = np.random.default_rng(0)
    image = (rng.random((48, 48)) * 200 + 20).astype(dtype)
    original = image.copy()
    _, result = run(denoise_planes(image, params))
    assert result.denoised.dtype == np.float32 and result.denoised.shape == image.shape
    np.testing.assert_allclose(result.noise_map, image.astype(np.float32) - result.denoised, atol=1e-4)
    assert 0 < result.denoised.mean() < 260  # input units, not [0, 1]
    np.testing.assert_array_equal(image, original)  # never modified in place


def test_every_plane_of_a_5d_stack_is_processed_like_a_single_plane(params):
    rng = np.random.default_rng(1)
    stack = rng.poisson(30, (2, 2, 2, 40, 40)).astype(np.uint16)  # T Z C Y X
    steps, result = run(denoise_planes(stack, params.replace(normalization="dtype"), axes="TZCYX"))
    assert result.denoised.shape == stack.shape
    assert steps[-1].planes == 8 and steps[-1].plane == 8
    assert [s.iteration for s in steps[:2]] == [1, 2]
    # Plane (1, 0, 1) alone, with the seed it gets inside the stack (plane index 5).
    _, single = run(denoise_planes(stack[1, 0, 1], params.replace(normalization="dtype", seed=params.seed + 7919 * 5)))
    np.testing.assert_allclose(result.denoised[1, 0, 1], single.denoised, atol=1e-3)


def test_y_and_x_need_not_be_last(params):
    image = np.random.default_rng(2).random((40, 3, 44)).astype(np.float32)
    _, result = run(denoise_planes(image, params, axes="YZX"))
    assert result.denoised.shape == image.shape


def test_rgb_image_uses_colour_samples(params):
    rgb = (np.random.default_rng(3).random((40, 40, 3)) * 255).astype(np.uint8)
    steps, result = run(denoise_planes(rgb, params))
    assert result.axes == "YXS" and result.denoised.shape == rgb.shape
    assert steps[-1].planes == 1


def test_same_seed_same_output_other_seed_differs(params):
    image = np.random.default_rng(4).random((40, 40)).astype(np.float32)
    a = run(denoise_planes(image, params))[1].denoised
    b = run(denoise_planes(image, params))[1].denoised
    c = run(denoise_planes(image, params.replace(seed=1)))[1].denoised
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((0, 40)), "empty"),
        (np.full((40, 40), np.nan, dtype=np.float32), "NaN or infinite"),
        (np.zeros((20, 20)), "too small"),
        (np.zeros((40, 40), dtype=complex), "unsupported data type"),
    ],
)
def test_bad_input_is_refused_before_any_work(params, image, message):
    with pytest.raises(InputError, match=message):
        next(denoise_planes(image, params))


def test_closing_the_generator_cancels_without_touching_the_input(params):
    image = np.random.default_rng(5).random((3, 40, 40)).astype(np.float32)
    original = image.copy()
    gen = denoise_planes(image, params.replace(iterations=50))
    first = next(gen)
    assert isinstance(first, Progress) and first.iteration == 1
    gen.close()
    with pytest.raises(StopIteration):
        next(gen)
    np.testing.assert_array_equal(image, original)


def test_progress_fraction_and_eta():
    p = Progress(plane=2, planes=4, iteration=50, iterations=100, elapsed=30.0)
    assert p.fraction == pytest.approx(1.5 / 4)
    assert p.eta == pytest.approx(50.0)


def test_preview_is_in_input_units(params):
    image = (np.random.default_rng(6).random((40, 40)) * 1000 + 500).astype(np.uint16)
    steps, _ = run(denoise_planes(image, params, preview_every=1))
    previews = [s.preview for s in steps if s.event == "iteration"]
    assert len(previews) == 2 and all(p.shape == (40, 40) for p in previews)
    assert 300 < float(previews[-1].mean()) < 1700
    assert steps[-1].event == "plane" and steps[-1].preview is None


def test_pixel_shuffle_handles_sizes_not_divisible_by_the_factor(params):
    image = np.random.default_rng(7).random((75, 81)).astype(np.float32)
    _, result = run(denoise_planes(image, params.replace(pd_factor=2)))
    assert result.denoised.shape == image.shape


def test_large_planes_are_tiled_without_seams(params):
    # Each tile is fine-tuned on its own, so tiles disagree a little; blending
    # must spread that over the overlap instead of leaving a step at a tile edge.
    from napari_mpid.core.run.tiling import axis_tiles

    image = np.random.default_rng(8).normal(0.5, 0.05, (96, 200)).astype(np.float32)
    p = params.replace(tile_size=80, tile_overlap=24, iterations=3)
    steps, result = run(denoise_planes(image, p))
    (rows, _), (columns, width) = axis_tiles(96, 80, 24), axis_tiles(200, 80, 24)
    assert steps[-1].tiles == len(rows) * len(columns)
    column_jump = np.abs(np.diff(result.denoised, axis=1)).mean(axis=0)
    edges = [s - 1 for s in columns[1:]] + [s + width - 1 for s in columns[:-1]]
    assert column_jump[edges].max() < 1.5 * np.median(column_jump)


def test_rgb_with_a_one_channel_model_previews_colour_and_progress_rises_once(params):
    # The 1-channel model fills an RGB plane as three parts: previews must be
    # (H, W, 3) for napari's rgb layers, and the fraction must rise once from 0 to 1.
    rgb = (np.random.default_rng(9).random((40, 40, 3)) * 255).astype(np.uint8)
    steps, _ = run(denoise_planes(rgb, params, preview_every=1))
    previews = [s.preview for s in steps if s.preview is not None]
    assert previews and all(p.shape == (40, 40, 3) for p in previews)
    fractions = [s.fraction for s in steps]
    assert all(b >= a for a, b in itertools.pairwise(fractions))
    assert fractions[-1] == pytest.approx(1.0) and max(fractions) <= 1.0 + 1e-9
    assert steps[-2].parts == 3 and steps[-2].part == 3


def test_tiles_too_small_for_the_network_after_pixel_shuffle_are_refused_before_work(params):
    # 64-pixel tiles with pd 2 give 32-pixel sub-images; the network needs 33.
    image = np.random.default_rng(10).random((100, 100)).astype(np.float32)
    with pytest.raises(InputError, match="tile_size"):
        next(denoise_planes(image, params.replace(pd_factor=2, tile_size=64, tile_overlap=16)))


def test_a_model_is_filled_with_its_own_mask_ratio_unless_one_is_set():
    image = (np.random.default_rng(11).random((40, 40, 3)) * 255).astype(np.uint8)
    params = preset("fast", iterations=1, model="pixel-independent")
    _, result = run(denoise_planes(image, params))
    assert result.params.mask_ratio == pytest.approx(0.30)
    assert any("mask ratio 0.30" in note for note in result.notes)
    _, chosen = run(denoise_planes(image, params.replace(mask_ratio=0.5)))
    assert chosen.params.mask_ratio == 0.5 and not any("mask ratio" in n for n in chosen.notes)
    _, default = run(denoise_planes(image[..., 0], params.replace(model="real-noise")))
    assert default.params.mask_ratio == pytest.approx(0.85)


def test_metadata_records_the_stack_size_and_tile_size_used(params):
    stack = np.random.default_rng(12).random((3, 40, 40)).astype(np.float32)
    _, stacked = run(denoise_planes(stack, params.replace(stack_planes=2, precision="float32")))
    assert stacked.metadata()["param_stack_planes"] == 2
    _, auto = run(denoise_planes(stack, params))  # automatic: one by one on a CPU
    assert auto.metadata()["param_stack_planes"] == 1
    assert auto.metadata()["param_tile_size"] >= 128  # chosen from memory, recorded
    assert auto.metadata()["param_precision"] in ("float32", "bfloat16")


def test_the_callers_model_is_neither_fine_tuned_nor_moved(params):
    from napari_mpid.core.model.checkpoints import load_model

    model = load_model(params.model, "cpu")
    before = {k: v.clone() for k, v in model.network.state_dict().items()}
    image = np.random.default_rng(13).random((40, 40)).astype(np.float32)
    run(denoise_planes(image, params.replace(device="cpu"), model=model))
    after = model.network.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_subset_of_planes_gives_the_same_planes_as_the_full_run(params):
    # Resume and Dask shards rely on this: plane k's masks depend on the seed and k only.
    stack = np.random.default_rng(14).random((4, 40, 40)).astype(np.float32)
    _, full = run(denoise_planes(stack, params))
    out = np.full(stack.shape, -1.0, dtype=np.float32)
    steps, part = run(denoise_planes(stack, params, planes=[1, 3], out=out, noise_map=False))
    np.testing.assert_array_equal(out[[1, 3]], full.denoised[[1, 3]])
    assert (out[[0, 2]] == -1).all() and part.noise_map is None
    assert [s.number for s in steps if s.event == "plane"] == [1, 3]


def test_a_lazy_source_is_read_plane_by_plane(params):
    class Lazy:
        """An array-like that records which planes were read."""

        def __init__(self, data):
            self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, []

        def __getitem__(self, key):
            self.reads.append(key)
            return self.data[key]

    stack = np.random.default_rng(15).random((3, 40, 40)).astype(np.float32)
    lazy = Lazy(stack)
    _, result = run(denoise_planes(lazy, params))
    _, eager = run(denoise_planes(stack, params))
    np.testing.assert_array_equal(result.denoised, eager.denoised)
    assert all(isinstance(k[0], int) for k in lazy.reads)  # never the whole array
