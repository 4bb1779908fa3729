from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from napari_mpid.core.model.checkpoints import CheckpointError, load_model
from napari_mpid.core.model.network import (
    SkipNetwork,
    convert_reference_state_dict,
    network_input,
    pointwise_conv,
    reference_key_map,
    reflect_pad,
)


def test_parameter_count_matches_the_paper():
    net = SkipNetwork(channels=3, multi_channel_mask=False)
    count = sum(p.numel() for p in net.parameters())
    assert 0.70e6 < count < 0.80e6


@pytest.mark.parametrize("multi, expected_inputs", [(False, 4), (True, 6)])
def test_input_channels_follow_the_mask_mode(multi, expected_inputs):
    net = SkipNetwork(channels=3, multi_channel_mask=multi)
    assert net.encoder_decoder.skip.conv.in_channels == expected_inputs
    image = torch.rand(1, 3, 40, 40)
    mask = torch.ones(1, net.mask_channels, 40, 40)
    assert network_input(image, mask).shape[1] == expected_inputs


@pytest.mark.parametrize("size", [(33, 33), (64, 48), (65, 97)])
def test_output_shape_equals_input_shape_for_odd_sizes(size):
    net = SkipNetwork(channels=1)
    x = torch.rand(1, 2, *size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (1, 1, *size)
    assert float(y.min()) > 0 and float(y.max()) < 1


def test_key_map_is_one_to_one_and_covers_every_parameter():
    mapping = reference_key_map()
    assert len(set(mapping.values())) == len(mapping)
    ours = SkipNetwork(3).state_dict()
    prefixes = {k.rpartition(".")[0] for k in ours}
    assert prefixes == set(mapping)


@pytest.mark.reference
@pytest.mark.parametrize(
    "name, multi",
    [
        ("imgnet_80_95_singlechannel_skip.pth", False),
        ("imgnet_30_multchannel_skip.pth", True),
    ],
)
def test_reference_checkpoints_load_strictly(anchors, name, multi):
    raw = torch.load(anchors / "ckpts" / name, map_location="cpu", weights_only=True)
    converted = convert_reference_state_dict(raw["params"])
    net = SkipNetwork(3, multi)
    net.load_state_dict(converted, strict=True)  # raises on any missing/unexpected key
    assert set(converted) == set(net.state_dict())
    model = load_model(anchors / "ckpts" / name)
    assert model.network.multi_channel_mask is multi and model.network.channels == 3
    assert len(model.sha256) == 64


@pytest.mark.reference
def test_other_reference_architectures_are_refused_clearly(anchors):
    with pytest.raises(CheckpointError, match="not an MPI skip-network checkpoint"):
        load_model(anchors / "ckpts" / "imgnet_30_multchannel_dncnn.pth")


@pytest.mark.parametrize(("shape", "pad", "channels_last"), [((2, 3, 7, 9), 1, False), ((1, 4, 6, 5), 2, True)])
def test_reflect_pad_matches_torch_values_and_gradients(shape, pad, channels_last):
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    ours_in = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    ours = reflect_pad(ours_in, pad)
    theirs = F.pad(x, (pad,) * 4, mode="reflect")
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    assert ours.is_contiguous(memory_format=torch.channels_last) == channels_last
    g = torch.randn_like(theirs)
    (g_ours,) = torch.autograd.grad(ours, x, g)
    (g_theirs,) = torch.autograd.grad(theirs, x, g)
    torch.testing.assert_close(g_ours, g_theirs)


def test_reflect_pad_rejects_too_small_planes():
    with pytest.raises(ValueError, match="needs H and W"):
        reflect_pad(torch.zeros(1, 1, 2, 5), 2)


def test_pointwise_conv_equals_1x1_convolution():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 3, 1)
    x = torch.randn(2, 8, 5, 6).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(pointwise_conv(x, conv), conv(x), rtol=1e-5, atol=1e-6)
