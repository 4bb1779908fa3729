"""The filling network: a DIP-style "skip" encoder-decoder.

The architecture follows the MPI paper (Ma et al., NeurIPS 2024, Sec. 3 and
Fig. 2), which reuses the Deep Image Prior "skip" network: five scales with 64
channels everywhere, a 1x1 skip branch and a strided 3x3 branch per scale,
reflection padding on every convolution, BatchNorm after every convolution and
a sigmoid head.

The module tree is written as named blocks so that it reads like the figure;
:func:`reference_key_map` bridges these names to the nested ``Sequential``
names used by the authors' checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "FIRST_LAYER_WEIGHTS",
    "ConvNormAct",
    "ScaleLevel",
    "SkipNetwork",
    "convert_reference_state_dict",
    "network_input",
    "pointwise_conv",
    "reference_key_map",
    "reflect_pad",
    "with_extra_inputs",
]

#: Slope of the LeakyReLU used after every BatchNorm.
LEAKY_SLOPE = 0.2


class _ReflectPad(torch.autograd.Function):
    """Reflection padding that keeps the memory format and folds gradients in place.

    Same values as ``F.pad(x, (p,) * 4, mode="reflect")``. PyTorch's kernel
    returns a contiguous (NCHW) tensor for a channels-last input, which costs a
    format conversion before every convolution, and its backward zero-fills a
    full-size buffer. Here the forward writes one buffer in the input's format
    and the backward copies the interior once and adds the reflected borders.
    With :func:`pointwise_conv` this saves ~8 % of a bf16 256x256 iteration on
    one CPU thread (``benchmarks/speed.py --profile``, docs/benchmarks.md).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: int) -> torch.Tensor:  # type: ignore[override]
        ctx.p = p
        n, c, h, w = x.shape
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        out = torch.empty((n, c, h + 2 * p, w + 2 * p), dtype=x.dtype, device=x.device, memory_format=fmt)
        out[..., p:-p, p:-p] = x
        out[..., :p, p:-p] = x[..., 1 : p + 1, :].flip(-2)
        out[..., -p:, p:-p] = x[..., -p - 1 : -1, :].flip(-2)
        out[..., :, :p] = out[..., :, p + 1 : 2 * p + 1].flip(-1)
        out[..., :, -p:] = out[..., :, -2 * p - 1 : -p - 1].flip(-1)
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        p = ctx.p
        gx = g[..., p:-p, p:-p].clone()
        # Border columns of the interior rows fold onto columns 1..p / -p-1..-2.
        gx[..., :, 1 : p + 1] += g[..., p:-p, :p].flip(-1)
        gx[..., :, -p - 1 : -1] += g[..., p:-p, -p:].flip(-1)
        # Border rows: fold their own columns first (corners), then the rows.
        top = g[..., :p, p:-p].clone()
        top[..., 1 : p + 1] += g[..., :p, :p].flip(-1)
        top[..., -p - 1 : -1] += g[..., :p, -p:].flip(-1)
        bottom = g[..., -p:, p:-p].clone()
        bottom[..., 1 : p + 1] += g[..., -p:, :p].flip(-1)
        bottom[..., -p - 1 : -1] += g[..., -p:, -p:].flip(-1)
        gx[..., 1 : p + 1, :] += top.flip(-2)
        gx[..., -p - 1 : -1, :] += bottom.flip(-2)
        return gx, None


def reflect_pad(x: torch.Tensor, p: int) -> torch.Tensor:
    """Reflection-pad the last two dimensions of ``(N, C, H, W)`` by ``p`` (``p < H, W``)."""
    if p == 0:
        return x
    if p >= x.shape[-1] or p >= x.shape[-2]:
        raise ValueError(f"reflection padding {p} needs H and W > {p}, got {tuple(x.shape[-2:])}")
    return _ReflectPad.apply(x, p)


def pointwise_conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """A 1x1 convolution computed as a matrix product over the channel axis.

    For channels-last input the ``(N, H, W, C)`` view is contiguous and this
    is one GEMM forward and two backward; PyTorch's CPU convolution takes a
    slow unblocked path (``_slow_conv2d``) for a 64-to-1 float32 1x1 conv.
    Same arithmetic as ``conv(x)`` up to summation order.
    """
    weight = conv.weight.flatten(1)
    out = F.linear(x.permute(0, 2, 3, 1), weight, conv.bias)
    return out.permute(0, 3, 1, 2)


class ConvNormAct(nn.Module):
    """Reflection pad -> convolution (with bias) -> BatchNorm -> LeakyReLU(0.2).

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts.
    kernel_size : int
        1 or 3.
    stride : int
        2 for the down-sampling convolution of a scale, else 1.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.pad = (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, bias=True)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = reflect_pad(x, self.pad)
        return F.leaky_relu(self.norm(self.conv(x)), LEAKY_SLOPE)


class ScaleLevel(nn.Module):
    """One scale of the encoder-decoder, holding the next, coarser scale inside.

    ``skip`` keeps full resolution (1x1 conv); ``down`` halves the resolution
    (strided 3x3 conv then 3x3 conv); ``inner`` is the next scale (absent at the
    coarsest one); the coarse result is upsampled (nearest, x2), concatenated
    after the skip features, normalised, and fused by a 3x3 then a 1x1 conv.
    """

    def __init__(self, in_channels: int, width: int, depth_below: int) -> None:
        super().__init__()
        self.skip = ConvNormAct(in_channels, width, 1)
        self.down1 = ConvNormAct(in_channels, width, 3, stride=2)
        self.down2 = ConvNormAct(width, width, 3)
        self.inner = ScaleLevel(width, width, depth_below - 1) if depth_below > 0 else None
        self.merge_norm = nn.BatchNorm2d(2 * width)
        self.fuse3 = ConvNormAct(2 * width, width, 3)
        self.fuse1 = ConvNormAct(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(x)
        deep = self.down2(self.down1(x))
        if self.inner is not None:
            deep = self.inner(deep)
        deep = F.interpolate(deep, scale_factor=2.0, mode="nearest")
        # Odd sizes: the upsampled branch is one pixel larger; crop it to the
        # skip branch (offset (diff // 2), as the DIP network does).
        dh = deep.shape[-2] - skip.shape[-2]
        dw = deep.shape[-1] - skip.shape[-1]
        if dh or dw:
            deep = deep[..., dh // 2 : dh // 2 + skip.shape[-2], dw // 2 : dw // 2 + skip.shape[-1]]
        merged = self.merge_norm(torch.cat([skip, deep], dim=1))
        return self.fuse1(self.fuse3(merged))


class SkipNetwork(nn.Module):
    """Masked-pixel filling network D.

    Parameters
    ----------
    channels : int
        Image channels C (1 for a native gray model, 3 for RGB models).
    multi_channel_mask : bool
        True: one independent keep-mask per channel, input has 2C channels.
        False: one keep-mask shared by all channels, input has C + 1 channels.
    width : int
        Feature channels at every scale (64 in the paper).
    scales : int
        Number of scales (5 in the paper).
    extra_inputs : int
        Further input channels after the masked image and its mask(s): the
        neighbouring planes of context filling (:mod:`~napari_mpid.core.fill.context`).
        0 for the paper's network.

    Notes
    -----
    Input ``(B, C + K [+ extra], H, W)``: the masked image followed by its
    keep-mask(s) (K = C or 1, see :func:`network_input`), then any extra inputs. Output ``(B, C, H, W)``, values in
    (0, 1). H and W must exceed ``2 ** scales`` (reflection padding at the
    coarsest scale needs at least 2 pixels).
    """

    def __init__(
        self,
        channels: int = 3,
        multi_channel_mask: bool = False,
        width: int = 64,
        scales: int = 5,
        extra_inputs: int = 0,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.multi_channel_mask = multi_channel_mask
        self.width = width
        self.scales = scales
        self.extra_inputs = extra_inputs
        in_channels = (2 * channels if multi_channel_mask else channels + 1) + extra_inputs
        self.encoder_decoder = ScaleLevel(in_channels, width, scales - 1)
        self.head = nn.Conv2d(width, channels, 1, bias=True)

    @property
    def mask_channels(self) -> int:
        """Number of keep-mask channels the network expects (C or 1)."""
        return self.channels if self.multi_channel_mask else 1

    @property
    def min_size(self) -> int:
        """Smallest height/width the network accepts."""
        return 2**self.scales + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.encoder_decoder(x)))


def network_input(image: torch.Tensor, keep_mask: torch.Tensor) -> torch.Tensor:
    """Build the network input from an image and its keep-mask.

    Parameters
    ----------
    image : torch.Tensor
        ``(B, C, H, W)``, values in [0, 1].
    keep_mask : torch.Tensor
        ``(B, C, H, W)`` or ``(B, 1, H, W)``; 1 = visible, 0 = dropped.

    Returns
    -------
    torch.Tensor
        ``(B, C + K, H, W)``: masked image then mask.
    """
    keep_mask = keep_mask.to(image.dtype)
    return torch.cat([image * keep_mask, keep_mask], dim=1)


#: The two convolutions that see the network's input (the first scale's skip and down branches).
FIRST_LAYER_WEIGHTS = ("encoder_decoder.skip.conv.weight", "encoder_decoder.down1.conv.weight")


def with_extra_inputs(state: dict[str, torch.Tensor], extra: int) -> dict[str, torch.Tensor]:
    """A state dict for :class:`SkipNetwork` with ``extra`` more input channels, their weights zero.

    The extra channels then have no effect at all: the network computes
    exactly what the original one computes, until fine-tuning gives the new
    weights values (context filling starts from the plane model this way).
    """
    out = dict(state)
    for name in FIRST_LAYER_WEIGHTS:
        w = state[name]
        out[name] = torch.cat([w, w.new_zeros((w.shape[0], extra, *w.shape[2:]))], dim=1)
    return out


def _level_keys(ours: str, theirs: str) -> dict[str, str]:
    """Our names -> reference names for one scale (prefixes end with '.')."""
    concat = theirs + "1."
    pairs = {
        "skip.conv": concat + "0.1.1",
        "skip.norm": concat + "0.2",
        "down1.conv": concat + "1.1.1",
        "down1.norm": concat + "1.2",
        "down2.conv": concat + "1.4.1",
        "down2.norm": concat + "1.5",
        "merge_norm": theirs + "2",
        "fuse3.conv": theirs + "3.1",
        "fuse3.norm": theirs + "4",
        "fuse1.conv": theirs + "6.1",
        "fuse1.norm": theirs + "7",
    }
    return {ours + k: v for k, v in pairs.items()}


def reference_key_map(scales: int = 5) -> dict[str, str]:
    """Map our module prefixes to the authors' checkpoint prefixes.

    The authors build the network as nested ``nn.Sequential`` containers
    whose children are numbered from 1 (their ``add`` helper), with a
    ``Concat(skip, deeper)`` module first and the next scale at index 7 of
    ``deeper``. Each returned entry maps one of our module prefixes (e.g.
    ``encoder_decoder.inner.skip.conv``) to theirs (``net.1.1.7.1.0.1.1``);
    parameter and buffer suffixes (``weight``, ``running_mean``...) are equal.
    """
    mapping: dict[str, str] = {}
    ours, theirs = "encoder_decoder.", "net."
    for _ in range(scales):
        mapping.update(_level_keys(ours, theirs))
        ours, theirs = ours + "inner.", theirs + "1.1.7."
    mapping["head"] = f"net.{9}.1"
    return mapping


def convert_reference_state_dict(state: dict[str, torch.Tensor], scales: int = 5) -> dict[str, torch.Tensor]:
    """Rename an authors' state dict (``net.1.0.1.1.weight``...) to our names.

    Raises
    ------
    KeyError
        If a key has no counterpart: the checkpoint is not a 5-scale skip network.
    """
    inverse = {v: k for k, v in reference_key_map(scales).items()}
    converted: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        prefix, _, suffix = key.rpartition(".")
        if prefix not in inverse:
            raise KeyError(f"unexpected key {key!r} in reference checkpoint")
        converted[f"{inverse[prefix]}.{suffix}"] = value
    return converted
