from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_mpid.core.engine import denoise_planes
from napari_mpid.core.fill.settings import FillSettings
from napari_mpid.core.fill.single import IterativeFiller
from napari_mpid.core.fill.stacked import StackedFiller
from napari_mpid.core.model.checkpoints import load_model
from napari_mpid.core.params import preset
from napari_mpid.core.steps import run_to_end


def _compare(model, n, steps, tolerance):
    # float64: grouped and plain convolutions differ only in summation order,
    # which float32 trajectories amplify differently on every CPU family.
    c = model.network.channels
    network = model.network.double()
    state = {k: v.double() if v.is_floating_point() else v for k, v in model.state.items()}
    images = torch.rand(n, 1, c, 40, 40, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    masks = (torch.rand(steps, n, 1, 1, 40, 40, generator=torch.Generator().manual_seed(0)) > 0.85).double()
    stacked = StackedFiller(network, state, FillSettings(beta=0.9, mask_ratio=0.85, learning_rate=2e-3))
    list(stacked.run(images, steps, keep_masks=masks))
    single = IterativeFiller(network, state, FillSettings(beta=0.9, mask_ratio=0.85, learning_rate=2e-3))
    for k in range(n):
        list(single.run(images[k], steps, keep_masks=masks[:, k]))
        diff = (stacked.running_average[k] - single.running_average).abs()
        assert float(diff.max()) < tolerance
    model.network.float()


def test_stacked_filling_equals_plane_by_plane_for_the_same_masks():
    model = load_model("random-init:1:single")
    _compare(model, 3, 4, 1e-9)


@pytest.mark.reference
def test_stacked_filling_with_pretrained_weights_stays_on_the_same_trajectory(anchors):
    model = load_model(anchors / "ckpts" / "imgnet_80_95_singlechannel_skip.pth")
    _compare(model, 2, 5, 1e-9)


def test_stack_mode_in_the_engine_matches_one_by_one(tiny_model):
    stack = np.random.default_rng(0).random((3, 40, 40)).astype(np.float32)
    # One iteration (no Adam step has acted yet): float32 rounding only, on any CPU.
    # Longer trajectories are compared in float64 above.
    params = preset("fast", iterations=1, model=tiny_model, precision="float32", context=0)
    one_by_one = run_to_end(denoise_planes(stack, params.replace(stack_planes=1), axes="ZYX"))
    together = run_to_end(denoise_planes(stack, params.replace(stack_planes=2), axes="ZYX"))
    np.testing.assert_allclose(together.denoised, one_by_one.denoised, atol=1e-4, rtol=0)


def test_stack_mode_with_pixel_shuffle_keeps_shapes(tiny_model):
    stack = np.random.default_rng(1).random((2, 70, 75)).astype(np.float32)
    params = preset("fast", iterations=2, model=tiny_model, pd_factor=2, stack_planes=2, context=0)
    gen = denoise_planes(stack, params, axes="ZYX")
    first = next(gen)
    assert first.group == 2 and first.plane == 1
    result = run_to_end(gen)
    assert result.denoised.shape == stack.shape
