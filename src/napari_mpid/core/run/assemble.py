"""From a plane as stored to the parts the network fills, and back.

A plane is read as ``(Y, X)`` or ``(Y, X, S)``. The network fills ``(C, H, W)``
arrays: a gray plane is one part with C = 1; an RGB plane is one part with
C = 3 for a 3-channel model, or three parts with C = 1 for a 1-channel
model. The alpha channel of RGBA is never filled and is kept as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_mpid.core.errors import InputError
from napari_mpid.core.run.plan import Plan

__all__ = ["Outputs", "merge_parts", "split_parts"]


def split_parts(plane: np.ndarray, plan: Plan) -> list[np.ndarray]:
    """The ``(C, H, W)`` float64 arrays the network fills for one plane, in input units."""
    data = plane.astype(np.float64)
    if not plan.samples:
        return [data[None]]
    colour = np.moveaxis(data[..., :3], -1, 0)
    return [colour] if plan.parts == 1 else [colour[i : i + 1] for i in range(3)]


def merge_parts(plane: np.ndarray, parts: list[np.ndarray], plan: Plan) -> np.ndarray:
    """Inverse of :func:`split_parts`: filled parts (input units) back to a float32 plane."""
    merged = np.concatenate(parts, axis=0)
    if not plan.samples:
        return merged[0].astype(np.float32)
    out = plane.astype(np.float32).copy()  # RGBA: the alpha channel is kept as it is
    out[..., :3] = np.moveaxis(merged, 0, -1)
    return out


def check_finite(plane: np.ndarray, where: str) -> None:
    """Refuse NaN and infinite values, naming how many and where."""
    if plane.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(plane)))
        if bad:
            raise InputError(f"{where} contains {bad} NaN or infinite value(s); replace them before denoising")


class Outputs:
    """Where finished planes go: the denoised array and, optionally, the noise map.

    Both are array-likes of the input's shape (numpy arrays by default; a
    zarr array or a memory-mapped TIFF for results larger than memory).
    ``noise map = input - denoised``, in input units.
    """

    def __init__(
        self,
        plan: Plan,
        denoised: Any = None,
        noise_map: Any = None,
        *,
        with_noise_map: bool = True,
        partial: bool = False,
    ) -> None:
        make = np.zeros if partial else np.empty
        self.plan = plan
        self.denoised = denoised if denoised is not None else make(plan.shape, dtype=np.float32)
        if noise_map is not None:
            self.noise_map = noise_map
        else:
            self.noise_map = make(plan.shape, dtype=np.float32) if with_noise_map else None
        for name, target in (("output", self.denoised), ("noise map output", self.noise_map)):
            if target is not None and tuple(target.shape) != plan.shape:
                raise InputError(f"the {name} has shape {tuple(target.shape)}, not the input's {plan.shape}")

    def write(self, plane_index: tuple[int, ...], plane: np.ndarray, denoised: np.ndarray) -> None:
        """Store one finished plane (``plane`` as read, ``denoised`` float32, both (Y, X[, S]))."""
        self.plan.write(self.denoised, plane_index, denoised)
        if self.noise_map is not None:
            self.plan.write(self.noise_map, plane_index, plane.astype(np.float32) - denoised)
