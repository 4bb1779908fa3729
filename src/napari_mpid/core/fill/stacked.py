"""Stack mode: fill several planes at once, each with its own weights.

MPI fine-tunes a fresh copy of the network for every plane. On a GPU one
plane leaves most of the device idle (the loop is bound by kernel launches),
so here N planes are filled together in one set of kernels: every parameter
gets a leading plane dimension, convolutions become grouped convolutions
(``groups = N``), and BatchNorm runs over ``N * channels`` features so that
each plane keeps its own batch statistics. Adam is element-wise, and the loss
is the sum of the planes' own losses, so each plane follows exactly the
trajectory it would follow alone; only the floating-point summation order
differs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch.nn import functional as F

from napari_mpid.core.fill.graphs import cuda_graphs_supported, run_steps
from napari_mpid.core.fill.optim import adam_for
from napari_mpid.core.fill.settings import FillSettings
from napari_mpid.core.fill.single import update_running_average
from napari_mpid.core.masks import draw_keep_mask, injected_keep_mask
from napari_mpid.core.model.network import LEAKY_SLOPE, SkipNetwork, reflect_pad

__all__ = ["StackedFiller", "stacked_forward"]


def _conv(p: dict[str, torch.Tensor], name: str, x: torch.Tensor, n: int, stride: int = 1) -> torch.Tensor:
    """Grouped conv of ``x`` (B, n*Cin, H, W) with per-plane weights ``(n, Cout, Cin, k, k)``."""
    w = p[name + ".weight"]
    b = p[name + ".bias"]
    k = w.shape[-1]
    x = reflect_pad(x, (k - 1) // 2)
    return F.conv2d(x, w.reshape(-1, *w.shape[2:]), b.reshape(-1), stride=stride, groups=n)


def _norm(p: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    """Training-mode BatchNorm with per-plane statistics (features are plane-major)."""
    return F.batch_norm(
        x, None, None, p[name + ".weight"].reshape(-1), p[name + ".bias"].reshape(-1), training=True, eps=1e-5
    )


def _block(p, name, x, n, stride=1):
    return F.leaky_relu(_norm(p, name + ".norm", _conv(p, name + ".conv", x, n, stride)), LEAKY_SLOPE)


def _level(p: dict[str, torch.Tensor], prefix: str, x: torch.Tensor, n: int, depth_below: int) -> torch.Tensor:
    skip = _block(p, prefix + "skip", x, n)
    deep = _block(p, prefix + "down2", _block(p, prefix + "down1", x, n, stride=2), n)
    if depth_below > 0:
        deep = _level(p, prefix + "inner.", deep, n, depth_below - 1)
    deep = F.interpolate(deep, scale_factor=2.0, mode="nearest")
    dh, dw = deep.shape[-2] - skip.shape[-2], deep.shape[-1] - skip.shape[-1]
    if dh or dw:
        deep = deep[..., dh // 2 : dh // 2 + skip.shape[-2], dw // 2 : dw // 2 + skip.shape[-1]]
    b, _, h, w = skip.shape
    # Concatenate per plane: [skip_k, deep_k] for every plane k.
    merged = torch.cat([skip.reshape(b, n, -1, h, w), deep.reshape(b, n, -1, h, w)], dim=2).reshape(b, -1, h, w)
    merged = _norm(p, prefix + "merge_norm", merged)
    return _block(p, prefix + "fuse1", _block(p, prefix + "fuse3", merged, n), n)


def stacked_forward(
    params: dict[str, torch.Tensor], x: torch.Tensor, n: int, scales: int = 5, precision: str = "float32"
) -> torch.Tensor:
    """Run N networks on N planes at once.

    Parameters
    ----------
    params : dict
        Our state-dict names (parameters only), each with a leading ``n``.
    x : torch.Tensor
        ``(B, n * Cin, H, W)``: plane k's input in channels ``[k*Cin, (k+1)*Cin)``;
        B > 1 only for pixel-shuffle sub-images.

    Returns
    -------
    torch.Tensor
        ``(B, n * C, H, W)``, values in (0, 1).
    """
    if precision == "bfloat16":
        # As in IterativeFiller: bf16 body, float32 head and everything after.
        with torch.autocast(x.device.type, dtype=torch.bfloat16, cache_enabled=False):
            features = _level(params, "encoder_decoder.", x, n, scales - 1)
        features = features.float()
    else:
        features = _level(params, "encoder_decoder.", x, n, scales - 1)
    return torch.sigmoid(_conv(params, "head", features, n))


class StackedFiller:
    """MPI iterative filling of N planes at once, each with its own weights.

    Parameters
    ----------
    network : SkipNetwork
        Gives the architecture; its weights are not used.
    initial_state : dict
        Pre-trained state dict (on the device); copied N times per run.
    settings : FillSettings
        As for :class:`~napari_mpid.core.fill.single.IterativeFiller` (``channels_last`` is not used).
    """

    def __init__(self, network: SkipNetwork, initial_state: dict[str, torch.Tensor], settings: FillSettings) -> None:
        self.network = network
        self.names = [name for name, _ in network.named_parameters()]
        self.initial_state = initial_state
        self.settings = settings
        self.running_average: torch.Tensor | None = None

    def run(
        self,
        images: torch.Tensor,
        iterations: int,
        *,
        generators: Sequence[torch.Generator] | None = None,
        keep_masks: torch.Tensor | Callable[[int], torch.Tensor] | None = None,
    ) -> Iterator[int]:
        """Fill ``images`` ``(n, B, C, H, W)`` (B sub-images per plane); yield t = 1..T.

        ``generators`` holds one mask generator per plane, so plane k gets the
        same masks as when filled alone with generator k. ``keep_masks``
        (tests) is ``(T, n, B, K, H, W)`` or a function of t returning
        ``(n, B, K, H, W)``. The result ``(n, B, C, H, W)`` is in
        :attr:`running_average` when the generator is exhausted.
        """
        n, b, c, h, w = images.shape
        k = self.network.mask_channels
        params = {
            name: self.initial_state[name]
            .detach()
            .unsqueeze(0)
            .repeat(n, *([1] * self.initial_state[name].dim()))
            .requires_grad_(True)
            for name in self.names
        }
        if keep_masks is None and (generators is None or len(generators) != n):
            raise ValueError("one generator per plane is needed when keep_masks is not given")
        capture = (
            self.settings.cuda_graph and keep_masks is None and cuda_graphs_supported(images.device, generators or [])
        )
        # Adam is elementwise: one optimiser over the stacked tensors keeps
        # every plane's moments separate.
        optimizer = adam_for(list(params.values()), self.settings.learning_rate, images.device, capture)
        ybar = images.detach().clone()
        keep = torch.empty((n, b, k, h, w), device=images.device)
        self.running_average = ybar
        t = 0

        def step() -> None:
            nonlocal t
            if keep_masks is None:
                for i, g in enumerate(generators):
                    shape = (b, 1 if self.settings.shared_mask else k, h, w)
                    keep[i].copy_(draw_keep_mask(shape, self.settings.mask_ratio, g, images.device))
            else:
                keep.copy_(injected_keep_mask(keep_masks, t, images.device))
            # (n, B, C+K, H, W) -> (B, n*(C+K), H, W), plane-major channels.
            net_in = torch.cat([images * keep, keep.expand(n, b, k, h, w)], dim=2)
            net_in = net_in.transpose(0, 1).reshape(b, n * (c + k), h, w)
            out = stacked_forward(params, net_in, n, self.network.scales, self.settings.precision)
            prediction = out.reshape(b, n, c, h, w).transpose(0, 1)
            with torch.no_grad():
                ybar.copy_(update_running_average(ybar, prediction, keep, self.settings.beta))
            # Sum of the planes' own mean losses: plane k's gradient is exactly its own.
            per_plane = ((prediction - images).square() * (1.0 - keep)).flatten(1).mean(dim=1)
            optimizer.zero_grad(set_to_none=True)
            per_plane.sum().backward()
            optimizer.step()
            t += 1

        yield from run_steps(step, iterations, capture=capture, generators=list(generators or []) if capture else [])
