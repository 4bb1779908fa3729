from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_mpid.core.fill.settings import FillSettings
from napari_mpid.core.fill.shuffle import pixel_shuffle_merge, pixel_shuffle_split
from napari_mpid.core.fill.single import IterativeFiller, masked_loss
from napari_mpid.core.masks import draw_keep_mask
from napari_mpid.core.model.checkpoints import load_model


@pytest.mark.parametrize("ratio", [0.3, 0.85])
def test_keep_mask_drops_the_requested_fraction(device, ratio):
    gen = torch.Generator(device).manual_seed(1)
    mask = draw_keep_mask((4, 1, 128, 128), ratio, gen, device)
    assert mask.device.type == device
    assert set(torch.unique(mask).tolist()) <= {0.0, 1.0}
    dropped = 1 - float(mask.mean())
    assert abs(dropped - ratio) < 0.01  # 65k pixels: 4 standard deviations is < 0.01
    # Independent across channels for multi-channel masks.
    multi = draw_keep_mask((1, 3, 128, 128), ratio, gen, device)
    assert not torch.equal(multi[0, 0], multi[0, 1])


def test_loss_only_sees_dropped_pixels():
    target = torch.zeros(1, 1, 8, 8)
    keep = torch.ones(1, 1, 8, 8)
    keep[..., :4] = 0  # left half dropped
    pred = torch.zeros(1, 1, 8, 8, requires_grad=True)
    with torch.no_grad():
        pred[..., 4:] = 5.0  # huge error on visible pixels only
    loss = masked_loss(pred, target, keep)
    assert float(loss.detach()) == 0.0
    with torch.no_grad():
        pred[..., :4] = 1.0
    loss = masked_loss(pred, target, keep)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(0.5)  # mean over all 64 elements of 32 ones
    assert torch.all(pred.grad[..., 4:] == 0) and torch.all(pred.grad[..., :4] != 0)


def test_pixel_shuffle_round_trip():
    x = torch.arange(2 * 6 * 8, dtype=torch.float32).reshape(1, 2, 6, 8)
    sub = pixel_shuffle_split(x, 2)
    assert sub.shape == (4, 2, 3, 4)
    assert torch.equal(sub[1, 0], x[0, 0, 0::2, 1::2])  # phase (0, 1)
    assert torch.equal(pixel_shuffle_merge(sub, 2), x)


def _filler(beta=0.9):
    model = load_model("random-init:1:single")
    return IterativeFiller(model.network, model.state, FillSettings(beta=beta, mask_ratio=0.5, learning_rate=2e-3))


def test_running_average_changes_only_at_dropped_pixels():
    filler = _filler()
    image = torch.rand(1, 1, 48, 48)
    keep = torch.ones(2, 1, 1, 48, 48)
    keep[0, ..., :10, :] = 0
    list(filler.run(image, 2, keep_masks=keep))
    changed = filler.running_average != image
    assert changed[..., :10, :].all()
    assert not changed[..., 10:, :].any()


def test_running_average_is_the_exponential_average_of_predictions():
    filler = _filler(beta=0.5)
    image = torch.rand(1, 1, 40, 40)
    keep = torch.zeros(1, 1, 1, 40, 40)  # everything dropped once
    record: dict = {}
    list(filler.run(image, 1, keep_masks=keep, record=record))
    expected = 0.5 * image + 0.5 * record["first_output"]
    torch.testing.assert_close(filler.running_average, expected)


def test_weights_are_reset_for_every_run():
    filler = _filler()
    image = torch.rand(1, 1, 40, 40)
    before = {k: v.clone() for k, v in filler.network.state_dict().items()}
    list(filler.run(image, 3, generator=torch.Generator().manual_seed(0)))
    first = filler.running_average.clone()
    assert any(not torch.equal(before[k], v) for k, v in filler.network.state_dict().items())
    list(filler.run(image, 3, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(filler.running_average, first, rtol=0, atol=0)


def test_same_seed_same_result_and_other_seed_differs():
    image = torch.rand(1, 1, 40, 40)
    results = []
    for seed in (3, 3, 4):
        filler = _filler()
        list(filler.run(image, 3, generator=torch.Generator().manual_seed(seed)))
        results.append(filler.running_average)
    assert torch.equal(results[0], results[1])
    assert not torch.equal(results[0], results[2])


def test_batchnorm_stays_in_training_mode():
    filler = _filler()
    filler.network.eval()
    gen = filler.run(torch.rand(1, 1, 40, 40), 1, generator=torch.Generator().manual_seed(0))
    next(gen)
    assert filler.network.training


def test_input_tensor_is_not_modified():
    filler = _filler()
    image = torch.rand(1, 1, 40, 40)
    copy = image.clone()
    list(filler.run(image, 2, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(image, copy)
    np.testing.assert_array_equal(image.numpy(), copy.numpy())


def _trajectory(model, image, masks, dtype=torch.float32, **kwargs):
    network = model.network.to(dtype)
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in model.state.items()}
    filler = IterativeFiller(network, state, FillSettings(beta=0.9, mask_ratio=0.85, learning_rate=2e-3, **kwargs))
    record: dict = {}
    list(filler.run(image.to(dtype), masks.shape[0], keep_masks=masks.to(dtype), record=record))
    model.network.float()
    return record["first_output"], filler.running_average


def test_channels_last_follows_the_same_trajectory():
    # Compared in float64: a float32 trajectory after a few Adam steps depends on
    # the CPU's kernels (AVX-512 or not), float64 does not at this tolerance.
    model = load_model("random-init:1:single")
    image = torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    masks = (torch.rand(4, 1, 1, 48, 48, generator=torch.Generator().manual_seed(0)) > 0.85).float()
    first, final = _trajectory(model, image, masks, torch.float64)
    first_nhwc, final_nhwc = _trajectory(model, image, masks, torch.float64, channels_last=True)
    torch.testing.assert_close(first_nhwc, first, atol=1e-10, rtol=0)
    torch.testing.assert_close(final_nhwc, final, atol=1e-9, rtol=0)


def test_bfloat16_first_prediction_is_close_to_float32():
    # bf16 convolutions round differently on every CPU family: compare the
    # first prediction only, before Adam steps can amplify the rounding.
    model = load_model("random-init:1:single")
    image = torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    masks = (torch.rand(1, 1, 1, 48, 48, generator=torch.Generator().manual_seed(0)) > 0.85).float()
    first, _ = _trajectory(model, image, masks)
    first_bf16, final_bf16 = _trajectory(model, image, masks, precision="bfloat16", channels_last=True)
    error = (first_bf16 - first).abs()
    assert float(error.mean()) < 1e-2 and float(error.max()) < 6e-2
    assert final_bf16.dtype == torch.float32  # running average kept in float32


def test_gray_planes_in_a_per_channel_mask_network_share_one_mask(monkeypatch):
    # Gray enters a 3-channel network as three equal channels: independent
    # per-channel masks would show each dropped pixel in another channel.
    from napari_mpid.core.engine import denoise_planes
    from napari_mpid.core.fill import single as filling
    from napari_mpid.core.params import preset

    seen = []
    original = filling.network_input
    monkeypatch.setattr(
        filling, "network_input", lambda image, keep: seen.append(keep.clone()) or original(image, keep)
    )
    gen = denoise_planes(
        np.random.default_rng(0).random((40, 40)), preset("fast", iterations=2, model="random-init:3:multi")
    )
    for _ in gen:
        pass
    assert seen and all(torch.equal(k[:, 0], k[:, 1]) and torch.equal(k[:, 0], k[:, 2]) for k in seen)
    seen.clear()
    rgb = np.random.default_rng(1).random((40, 40, 3))
    for _ in denoise_planes(rgb, preset("fast", iterations=2, model="random-init:3:multi")):
        pass
    assert not torch.equal(seen[0][:, 0], seen[0][:, 1])  # colour keeps its per-channel masks
