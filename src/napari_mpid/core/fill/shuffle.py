"""Pixel-shuffle down-sampling ("+PD" in MPI): a plane as f*f phase-shifted sub-images."""

from __future__ import annotations

import torch

__all__ = ["pixel_shuffle_merge", "pixel_shuffle_split"]


def pixel_shuffle_split(image: torch.Tensor, factor: int) -> torch.Tensor:
    """Split ``(1, C, H, W)`` into ``factor**2`` sub-images ``(f*f, C, H/f, W/f)``.

    H and W must be multiples of ``factor``. Sub-image ``i*f + j`` holds the
    pixels ``[i::f, j::f]``: neighbours in a sub-image are ``f`` pixels apart
    in the plane, which decorrelates spatially correlated noise (MPI's "+PD").
    """
    if factor == 1:
        return image
    _, c, h, w = image.shape
    sub = image.reshape(c, h // factor, factor, w // factor, factor)
    return sub.permute(2, 4, 0, 1, 3).reshape(factor * factor, c, h // factor, w // factor)


def pixel_shuffle_merge(sub_images: torch.Tensor, factor: int) -> torch.Tensor:
    """Inverse of :func:`pixel_shuffle_split`: ``(f*f, C, h, w)`` -> ``(1, C, h*f, w*f)``."""
    if factor == 1:
        return sub_images
    _, c, h, w = sub_images.shape
    grid = sub_images.reshape(factor, factor, c, h, w).permute(2, 3, 0, 4, 1)
    return grid.reshape(1, c, h * factor, w * factor)
