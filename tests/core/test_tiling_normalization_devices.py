from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_mpid.core.params import FillParams, ParameterError, preset, preset_name
from napari_mpid.core.run.devices import DeviceError, available_devices, resolve_device
from napari_mpid.core.run.normalization import fit_scale
from napari_mpid.core.run.tiling import Tile, blend_weights, plan_tiles


@pytest.mark.parametrize("h, w, tile, overlap", [(300, 200, 128, 32), (4096, 4096, 1024, 64), (130, 129, 64, 16)])
def test_tiles_cover_the_plane_and_weights_sum_to_one(h, w, tile, overlap):
    tiles = plan_tiles(h, w, tile, overlap)
    weights = blend_weights(tiles, h, w)
    total = np.zeros((h, w))
    for t, wt in zip(tiles, weights):
        assert t.height <= tile and t.width <= tile
        total[t.slices] += wt
    np.testing.assert_allclose(total, 1.0, atol=1e-5)


def test_blending_an_identity_reproduces_the_plane():
    plane = np.random.default_rng(0).random((150, 170)).astype(np.float32)
    tiles = plan_tiles(150, 170, 64, 16)
    out = np.zeros_like(plane)
    for t, wt in zip(tiles, blend_weights(tiles, 150, 170)):
        out[t.slices] += plane[t.slices] * wt
    np.testing.assert_allclose(out, plane, atol=1e-5)


def _eager_blend_weights(tiles, height, width):
    """The weights as computed before they were lazy: every tile's ramps summed over the whole plane."""
    from napari_mpid.core.run.tiling import _ramp

    tops, lefts = sorted({u.top for u in tiles}), sorted({u.left for u in tiles})
    raw = []
    for t in tiles:
        i, j = tops.index(t.top), lefts.index(t.left)
        ov_up = (tops[i - 1] + t.height - t.top) if i > 0 else 0
        ov_down = (t.top + t.height - tops[i + 1]) if i + 1 < len(tops) else 0
        ov_left = (lefts[j - 1] + t.width - t.left) if j > 0 else 0
        ov_right = (t.left + t.width - lefts[j + 1]) if j + 1 < len(lefts) else 0
        wy = _ramp(t.height, t.top, t.top + t.height, height, ov_up, ov_down)
        wx = _ramp(t.width, t.left, t.left + t.width, width, ov_left, ov_right)
        raw.append(np.outer(wy, wx))
    total = np.zeros((height, width))
    for t, w in zip(tiles, raw):
        total[t.slices] += w
    return [(w / total[t.slices]).astype(np.float32) for t, w in zip(tiles, raw)]


@pytest.mark.parametrize(
    "tiles, h, w",
    [
        (plan_tiles(150, 170, 64, 16), 150, 170),
        (plan_tiles(1000, 700, 256, 64), 1000, 700),
        (plan_tiles(64, 500, 64, 16), 64, 500),
        # Irregular tiles, listed out of order: the sums must follow the list order as before.
        (
            [Tile(10, 10, 60, 70), Tile(0, 0, 50, 60), Tile(30, 40, 50, 60), Tile(0, 40, 50, 60), Tile(30, 0, 50, 60)],
            80,
            110,
        ),
    ],
)
def test_weights_computed_on_demand_equal_the_whole_plane_computation_bit_for_bit(tiles, h, w):
    lazy = blend_weights(tiles, h, w)

    assert len(lazy) == len(tiles)
    for expected, got, again in zip(_eager_blend_weights(tiles, h, w), lazy, reversed(lazy[::-1])):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(again, expected)


@pytest.mark.parametrize("side", [6000, 60000])
def test_planning_a_huge_plane_allocates_nothing_per_pixel(side, tiny_model):
    """The blend weights of 60000 x 60000 pixels took ~21 bytes per pixel (81 GB) before any pixel was read."""
    import time
    import tracemalloc

    from napari_mpid.core.model.checkpoints import load_model
    from napari_mpid.core.run.plan import make_plan

    model = load_model(tiny_model, "cpu")
    params = FillParams(model=tiny_model, tile_size=512, context=0, stack_planes=1, device="cpu")
    start = time.perf_counter()
    tracemalloc.start()
    try:
        plan = make_plan((side, side), np.uint16, params, model, torch.device("cpu"), axes="YX")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < 32 * 2**20, f"planning took {peak / 2**20:.0f} MiB"
    assert time.perf_counter() - start < 5
    weight = plan.weights[len(plan.tiles) // 2]
    assert weight.shape == (plan.tiles[0].height, plan.tiles[0].width)


def test_percentile_scaling_keeps_contrast_and_reports_outliers():
    data = np.full((100, 100), 100, dtype=np.uint16)
    data[:50] = 200
    data[0, 0] = 60000  # one hot pixel
    scale = fit_scale(data, "percentile")
    assert scale.high < 1000 and scale.low < 100
    assert scale.outside == 1
    np.testing.assert_allclose(scale.inverse(scale.forward(data)), data, rtol=1e-5)


@pytest.mark.parametrize("policy, low, high", [("dtype", 0, 255), ("minmax", 10, 20), ("none", 0, 1)])
def test_other_scaling_policies(policy, low, high):
    data = np.array([[10, 20], [15, 12]], dtype=np.uint8)
    scale = fit_scale(data, policy)
    assert (scale.low, scale.high) == (low, high)


def test_constant_image_scales_without_division_by_zero():
    scale = fit_scale(np.full((8, 8), 7.0), "percentile")
    assert np.isfinite(scale.forward(np.full((2, 2), 7.0))).all()


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert "cpu" in available_devices() and "auto" in available_devices()
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_is_a_clear_error():
    with pytest.raises(DeviceError, match="not available"):
        resolve_device("cuda:0")


def test_presets_match_the_paper():
    assert (preset("fast").iterations, preset("fast").beta) == (200, 0.90)
    assert (preset("quality").iterations, preset("quality").beta) == (1000, 0.99)
    assert preset("fast", mask_ratio=0.3).mask_ratio == 0.3


def test_cpu_preset_and_preset_names():
    cpu = preset("cpu")
    assert (cpu.iterations, cpu.beta, cpu.learning_rate) == (150, 0.90, 3e-3)
    assert preset_name(cpu) == "cpu"
    assert preset_name(preset("quality", mask_ratio=0.3)) == "quality"  # mask ratio is not a preset field
    assert preset_name(preset("fast", learning_rate=1e-3)) is None
    assert preset_name({"iterations": 150, "beta": 0.90, "learning_rate": 3e-3}) == "cpu"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"mask_ratio": 1.0}, "mask_ratio"),
        ({"beta": -0.1}, "beta"),
        ({"iterations": 0}, "iterations"),
        ({"iterations": 2.5}, "iterations must be int"),
        ({"normalization": "zscore"}, "normalization"),
        ({"tile_size": 100, "tile_overlap": 60}, "tile_overlap"),
    ],
)
def test_invalid_parameters_are_refused(changes, message):
    with pytest.raises(ParameterError, match=message):
        FillParams(**changes)


def test_unknown_preset():
    with pytest.raises(ParameterError, match="unknown preset"):
        preset("slow")


def test_precision_auto_resolves_per_device():
    from napari_mpid.core.run.devices import resolve_precision

    assert resolve_precision("float32", torch.device("cpu")) == "float32"
    assert resolve_precision("bfloat16", torch.device("cpu")) == "bfloat16"
    assert resolve_precision("auto", torch.device("cpu")) in ("float32", "bfloat16")
    assert resolve_precision("auto", torch.device("cuda", 0)) == "float32"


def test_tiles_are_equal_and_evenly_spaced_so_large_planes_cost_little_extra_work():
    # 2048 px with tile 1024 / overlap 64: 3x3 tiles of 726 (1.13x the plane's
    # pixels), not 3x3 tiles of 1024 with the last one flush (2.25x).
    tiles = plan_tiles(2048, 2048, 1024, 64)
    assert len({(t.height, t.width) for t in tiles}) == 1
    work = sum(t.height * t.width for t in tiles) / 2048**2
    assert work < 1.2
    tops = sorted({t.top for t in tiles})
    assert max(np.diff(tops)) - min(np.diff(tops)) <= 1
    assert all(tops[i] + tiles[0].height - tops[i + 1] >= 64 for i in range(len(tops) - 1))


@pytest.mark.parametrize(
    "data, low, high",
    [
        (np.array([[3, 85]], dtype=np.uint8), 0, 255),  # 8-bit: the paper's /255, however dim
        (np.array([[0.1, 0.7]], dtype=np.float32), 0, 1),  # floats in [0, 1] as they are
    ],
)
def test_auto_scaling_of_8_bit_and_unit_float_data(data, low, high):
    scale = fit_scale(data, "auto")
    assert (scale.low, scale.high, scale.outside) == (low, high, 0)


def test_auto_scaling_falls_back_to_percentiles_for_wider_integers_other_floats_and_negative_integers():
    # A camera's 12/16-bit image (offset ~100, dim signal) divided by its bit depth
    # loses contrast the network needs: 4.4 dB on the demo's synthetic stack.
    rng = np.random.default_rng(0)
    for data in (
        rng.normal(500.0, 50.0, (64, 64)),
        rng.integers(-100, 100, (64, 64), dtype=np.int16),
        rng.integers(100, 160, (64, 64), dtype=np.uint16),
        rng.integers(100, 3000, (64, 64), dtype=np.uint16),
    ):
        assert fit_scale(data, "auto") == fit_scale(data, "percentile")


def test_default_scaling_of_8_bit_data_is_the_papers(tiny_model):
    # The measured rule (docs/benchmarks.md): on 8-bit data the default must be
    # exactly the paper's /255, which the percentile scaling lost 0.43 dB to.
    from napari_mpid.core.engine import denoise_planes
    from napari_mpid.core.steps import run_to_end

    image = (np.random.default_rng(1).random((40, 40)) * 90).astype(np.uint8)

    def run(params):
        return run_to_end(denoise_planes(image, params))

    params = preset("fast", iterations=2, model=tiny_model)
    default, paper = run(params), run(params.replace(normalization="dtype"))
    assert default.params.normalization == "auto" and default.scales == [(0.0, 255.0)]
    np.testing.assert_array_equal(default.denoised, paper.denoised)
    assert any("8-bit" in note for note in default.notes)
