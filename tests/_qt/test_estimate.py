"""The widget's rough run-time estimate: CPU and CUDA figures from the measured speeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_mpid._qt.estimate import CUDA_SECONDS, estimate_seconds, estimate_text, unit_iterations
from napari_mpid.core.checkpoints import load_model
from napari_mpid.core.params import FillParams
from napari_mpid.core.plan import make_plan


@pytest.fixture(scope="module")
def model():
    return load_model("random-init:1:single", torch.device("cpu"))


def plan_for(model, shape, **changes):
    params = FillParams(iterations=100, context=0, tile_size=256, **changes)
    return make_plan(shape, np.uint16, params, model, torch.device("cpu"), axes="ZYX")


def test_cuda_small_planes_are_launch_bound_and_large_planes_pixel_bound(model):
    cuda = torch.device("cuda")
    small = plan_for(model, (2, 64, 64))
    large = plan_for(model, (2, 512, 512))  # tiled at 256
    floor, per_megapixel = CUDA_SECONDS["auto"]

    assert estimate_seconds(small, cuda) == pytest.approx(2 * 100 * floor)
    tiles = len(large.tiles)
    assert unit_iterations(large) == 2 * 100 * tiles
    expected = max(
        2 * 100 * tiles * floor, 2 * 100 * sum(t.height * t.width for t in large.tiles) / 1e6 * per_megapixel
    )
    assert estimate_seconds(large, cuda) == pytest.approx(expected)
    # Eager iterations cost about 9x more than replayed CUDA graphs.
    assert estimate_seconds(plan_for(model, (2, 64, 64), cuda_graphs="off"), cuda) > 5 * estimate_seconds(small, cuda)
    assert "H100 speed" in estimate_text(small, cuda)


def test_devices_without_a_measured_speed_get_no_figure(model):
    plan = plan_for(model, (2, 64, 64))
    assert estimate_seconds(plan, torch.device("mps")) is None
    assert "not measured" in estimate_text(plan, torch.device("mps"))
    assert estimate_seconds(plan, torch.device("cpu")) > estimate_seconds(plan, torch.device("cuda"))


def test_the_auto_preset_is_an_upper_bound_and_a_static_scene_fills_one_plane_per_series(model):
    cpu = torch.device("cpu")
    fixed = plan_for(model, (4, 64, 64))
    assert estimate_text(fixed, cpu).startswith("rough estimate: ~")
    assert estimate_text(plan_for(model, (4, 64, 64), adaptive=True), cpu).startswith("rough estimate: at most")
    static = make_plan((4, 64, 64), np.uint16, FillParams(iterations=100, static_scene=True), model, cpu, axes="TYX")
    assert unit_iterations(static) == 100 and estimate_seconds(static, cpu) == pytest.approx(
        estimate_seconds(fixed, cpu) / 4
    )
