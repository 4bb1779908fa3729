"""Random fields of the filling: keep-masks (MPI, Sec. 3.1-3.2) and correlated noise probes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from napari_mpid.core.noise import correlation_tap

__all__ = ["correlated_field", "draw_keep_mask", "injected_keep_mask"]


def draw_keep_mask(
    shape: tuple[int, ...],
    mask_ratio: float,
    generator: torch.Generator,
    device: torch.device | str,
) -> torch.Tensor:
    """Bernoulli keep-mask drawn on ``device``: 1 = visible, 0 = dropped.

    Parameters
    ----------
    shape : tuple of int
        ``(B, K, H, W)`` with K = C (multi-channel mask) or 1 (shared mask).
    mask_ratio : float
        Probability that a pixel is dropped, 0 < p < 1.
    generator : torch.Generator
        Generator on ``device`` (drawing on the device avoids a host copy per
        iteration).

    Returns
    -------
    torch.Tensor
        float32 tensor of 0s and 1s.
    """
    uniform = torch.rand(shape, generator=generator, device=device)
    return (uniform >= mask_ratio).to(torch.float32)


def injected_keep_mask(
    keep_masks: torch.Tensor | Callable[[int], torch.Tensor], t: int, device: torch.device
) -> torch.Tensor:
    """Keep-mask of (0-based) iteration ``t`` from a tensor of masks or a function of t (tests)."""
    keep = keep_masks(t) if callable(keep_masks) else keep_masks[t]
    return keep.to(device, torch.float32)


def correlated_field(shape: tuple[int, ...], correlation: float, generator: torch.Generator, device) -> torch.Tensor:
    """Unit-variance noise ``(B, C, H, W)``, the same in every channel, with the autocorrelation of
    :func:`~napari_mpid.core.noise.noise_autocorrelation` (white noise blurred by [s, 1, s] along each axis)."""
    s = correlation_tap(correlation)
    b, c, h, w = shape
    white = torch.randn((b, 1, h + 2, w + 2), generator=generator, device=device)
    k = torch.tensor([s, 1.0, s], device=device, dtype=torch.float32) / float(np.sqrt(1 + 2 * s * s))
    field = torch.nn.functional.conv2d(white, k.view(1, 1, 3, 1))
    field = torch.nn.functional.conv2d(field, k.view(1, 1, 1, 3))
    return field.expand(b, c, h, w)
