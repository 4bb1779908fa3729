"""Denoising N-D microscopy arrays plane by plane: the core's long-running work.

:func:`denoise_planes` is a generator: it yields a :class:`Progress` after
every filling iteration and returns a :class:`DenoiseResult`. Scripts run it
to the end (:func:`napari_mpid.api.denoise`); the napari widget runs it in a
``thread_worker``, whose ``quit()`` closes the generator between two
iterations. The input array is never modified and nothing partial is
returned when the generator is closed early.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from .checkpoints import LoadedModel, load_model
from .devices import resolve_device, resolve_precision
from .filling import IterativeFiller, pixel_shuffle_merge, pixel_shuffle_split
from .normalization import IntensityScale, fit_scale
from .params import FillParams
from .stacked import StackedFiller
from .tiling import blend_weights, plan_tiles

__all__ = ["AXIS_LETTERS", "DenoiseResult", "InputError", "Progress", "denoise_planes", "resolve_axes"]

#: T time, Z depth, C channel (independent planes), Y/X the plane,
#: S colour samples (RGB, filled together), Q any other plane axis.
AXIS_LETTERS = "TZCYXSQ"


class InputError(ValueError):
    """The input array cannot be denoised (the message names the problem)."""


@dataclass(frozen=True)
class Progress:
    """Where a denoising run stands.

    Attributes
    ----------
    plane, planes : int
        1-based index of the plane being filled, and how many there are.
    iteration, iterations : int
        Filling iteration t of T within the current plane (and tile).
    tile, tiles : int
        1-based tile index within the plane, and tiles per plane.
    elapsed : float
        Seconds since the run started.
    preview : ndarray or None
        Current running average of this plane (Y, X[, S]) in input units,
        only every ``preview_every`` iterations when asked for.
    group : int
        Planes filled together in stack mode (``plane`` is the first of them).
    """

    plane: int
    planes: int
    iteration: int
    iterations: int
    tile: int = 1
    tiles: int = 1
    elapsed: float = 0.0
    preview: np.ndarray | None = None
    group: int = 1

    @property
    def fraction(self) -> float:
        """Fraction of the whole run done, in [0, 1]."""
        per_plane = self.tiles * self.iterations
        done = (self.plane - 1) * per_plane + self.group * ((self.tile - 1) * self.iterations + self.iteration)
        return done / (self.planes * per_plane)

    @property
    def eta(self) -> float | None:
        """Estimated seconds left, None before any work was measured."""
        f = self.fraction
        return self.elapsed * (1 - f) / f if f > 0 else None


@dataclass
class DenoiseResult:
    """Outputs of a run, with everything needed to reproduce it.

    Attributes
    ----------
    denoised, noise_map : ndarray
        Same shape as the input, in the input's intensity units
        (``noise_map = input - denoised``).
    """

    denoised: np.ndarray
    noise_map: np.ndarray
    params: FillParams
    axes: str
    model: str
    model_sha256: str
    device: str
    seconds: float
    precision: str = "float32"
    scales: list[tuple[float, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        """Flat, JSON-friendly record of the run (for layer metadata and TIFF tags)."""
        from .. import __version__

        return {
            "software": f"napari-mpid {__version__}",
            **{f"param_{k}": v for k, v in self.params.to_dict().items()},
            "axes": self.axes,
            "model": self.model,
            "model_sha256": self.model_sha256,
            "device": self.device,
            "precision": self.precision,
            "seconds": round(self.seconds, 2),
            "intensity_scales": [list(s) for s in self.scales],
            "warnings": list(self.warnings),
        }


def resolve_axes(shape: tuple[int, ...], axes: str | None = None, rgb: bool | None = None) -> str:
    """Validate or guess the axes string of an array.

    Without ``axes``: 2D is "YX"; 3D with a last dimension of 3 or 4 is "YXS"
    (RGB) unless ``rgb`` is False; otherwise the leading dimensions are
    planes ("Q"). ``rgb=True`` forces the last axis to be colour samples.

    Raises
    ------
    InputError
        If the axes do not match the shape or are ambiguous.
    """
    ndim = len(shape)
    if axes is None:
        if ndim < 2:
            raise InputError(f"a {ndim}D array is not an image; need at least 2 dimensions (Y, X)")
        rgb_last = rgb if rgb is not None else (ndim == 3 and shape[-1] in (3, 4))
        if rgb_last:
            return "Q" * (ndim - 3) + "YXS"
        return "Q" * (ndim - 2) + "YX"
    axes = axes.upper()
    bad = sorted(set(axes) - set(AXIS_LETTERS))
    if bad:
        raise InputError(f"unknown axis letter(s) {''.join(bad)!r} in {axes!r}; use letters from {AXIS_LETTERS}")
    if len(axes) != ndim:
        raise InputError(f"axes {axes!r} have {len(axes)} letters but the array has {ndim} dimensions {shape}")
    for letter in "TZCYXS":
        if axes.count(letter) > 1:
            raise InputError(f"axis {letter!r} appears twice in {axes!r}")
    if "Y" not in axes or "X" not in axes:
        raise InputError(f"axes {axes!r} must contain Y and X")
    if "S" in axes and shape[axes.index("S")] not in (3, 4):
        raise InputError(f"colour axis S must have 3 (RGB) or 4 (RGBA) samples, not {shape[axes.index('S')]}")
    return axes


def _validate(image: np.ndarray) -> None:
    if image.size == 0:
        raise InputError(f"the image is empty (shape {image.shape})")
    if image.dtype.kind not in "uifb":
        raise InputError(f"unsupported data type {image.dtype}; expected integers or floats")
    if image.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(image)))
        if bad:
            raise InputError(f"the image contains {bad} NaN or infinite value(s); replace them before denoising")


class _PlaneFiller:
    """Fills one 2D plane (C, H, W) in [0, 1] with tiling and pixel-shuffle."""

    def __init__(self, model: LoadedModel, params: FillParams, device: torch.device) -> None:
        self.model = model
        self.params = params
        self.device = device
        precision = resolve_precision(params.precision, device)
        self.filler = IterativeFiller(
            model.network,
            model.state,
            beta=params.beta,
            mask_ratio=params.mask_ratio,
            learning_rate=params.learning_rate,
            precision=precision,
            channels_last=precision == "bfloat16" or device.type == "cuda",
            cuda_graph=params.cuda_graphs == "auto",
        )

    def min_side(self) -> int:
        return self.model.network.min_size * self.params.pd_factor

    def fill(self, plane: np.ndarray, seed: int) -> Generator[tuple[int, int, int], None, np.ndarray]:
        """Yield (tile, tiles, iteration) and return the filled plane (C, H, W)."""
        p = self.params
        _, h, w = plane.shape
        tiles = plan_tiles(h, w, p.tile_size, p.tile_overlap)
        weights = blend_weights(tiles, h, w) if len(tiles) > 1 else [None]
        out = np.zeros_like(plane) if len(tiles) > 1 else None
        for k, (tile, weight) in enumerate(zip(tiles, weights)):
            part = plane[(slice(None), *tile.slices)]
            gen = torch.Generator(self.device).manual_seed(seed * 1_000_003 + k)
            result = yield from self._fill_tile(part, gen, k + 1, len(tiles))
            if out is None:
                return result
            out[(slice(None), *tile.slices)] += result * weight
        return out

    def to_batch(self, part: np.ndarray) -> torch.Tensor:
        """``(C, H, W)`` in [0, 1] -> the network's batch ``(f*f, C', H/f, W/f)`` on the device."""
        f = self.params.pd_factor
        c, h, w = part.shape
        x = torch.from_numpy(np.ascontiguousarray(part, dtype=np.float32)).to(self.device)[None]
        if self.model.network.channels == 3 and c == 1:
            x = x.expand(1, 3, h, w).contiguous()  # the paper feeds gray as 3 equal channels
        ph, pw = (-h) % f, (-w) % f
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        return pixel_shuffle_split(x, f)

    def from_batch(self, ybar: torch.Tensor, c: int, h: int, w: int) -> np.ndarray:
        """Inverse of :meth:`to_batch` for a running average: back to ``(c, H, W)``."""
        out = pixel_shuffle_merge(ybar, self.params.pd_factor)[0, :, :h, :w]
        if out.shape[0] != c:
            out = out.mean(dim=0, keepdim=True)
        # A copy: the filler keeps updating its buffer in place (previews).
        return out.detach().float().cpu().numpy().copy()

    def _fill_tile(self, part: np.ndarray, gen: torch.Generator, tile: int, tiles: int):
        c, h, w = part.shape
        for t in self.filler.run(self.to_batch(part), self.params.iterations, generator=gen):
            yield tile, tiles, t
        return self.from_batch(self.filler.running_average, c, h, w)

    def fill_stack(self, parts: list[np.ndarray], seeds: list[int]):
        """Fill same-sized single-tile planes together (stack mode); yield t, return the planes."""
        c, h, w = parts[0].shape
        batch = torch.stack([self.to_batch(p) for p in parts])
        gens = [torch.Generator(self.device).manual_seed(s * 1_000_003) for s in seeds]
        stacked = StackedFiller(
            self.model.network,
            self.model.state,
            beta=self.params.beta,
            mask_ratio=self.params.mask_ratio,
            learning_rate=self.params.learning_rate,
            precision=self.filler.precision,
            cuda_graph=self.params.cuda_graphs == "auto",
        )
        yield from stacked.run(batch, self.params.iterations, generators=gens)
        return [self.from_batch(ybar, c, h, w) for ybar in stacked.running_average]


def stack_size(params: FillParams, device: torch.device, height: int, width: int, planes: int) -> int:
    """How many planes to fill at once: ``params.stack_planes``, or chosen from free memory.

    "auto" (0) stacks only on CUDA, where one plane leaves the GPU idle; it
    budgets ~10 kB of activations and gradients per pixel and plane
    (an unmeasured estimate: ~30 float32 activations of 64 channels per
    pixel, kept for the backward pass) within 60 % of
    the free device memory, and at most 32 planes.
    """
    if params.stack_planes:
        return max(1, min(params.stack_planes, planes))
    if device.type != "cuda":
        return 1
    free, _ = torch.cuda.mem_get_info(device)
    per_plane = 10_000 * height * width
    return int(max(1, min(32, planes, (0.6 * free) // per_plane)))


def denoise_planes(
    image: np.ndarray,
    params: FillParams,
    *,
    axes: str | None = None,
    rgb: bool | None = None,
    model: LoadedModel | None = None,
    preview_every: int | None = None,
) -> Generator[Progress, None, DenoiseResult]:
    """Denoise every plane of ``image``; yield progress, return the result.

    Parameters
    ----------
    image : ndarray
        Any shape with a Y and an X axis; integer or float dtype. Never modified.
    params : FillParams
    axes : str, optional
        One letter per dimension (see :data:`AXIS_LETTERS`); guessed when
        omitted (see :func:`resolve_axes`).
    rgb : bool, optional
        Whether the last axis holds colour samples (only used to guess axes).
    model : LoadedModel, optional
        Pre-loaded model (else ``params.model`` is loaded on ``params.device``).
    preview_every : int, optional
        Attach the current plane's running average to every n-th Progress.

    Raises
    ------
    InputError, DeviceError, CheckpointError
        Before any work starts, with a message naming the problem.
    """
    image = np.asarray(image)
    _validate(image)
    axes = resolve_axes(image.shape, axes, rgb)
    device = resolve_device(params.device)
    if model is None:
        model = load_model(params.model, device)
    elif model.network.head.weight.device != device:
        model = LoadedModel(
            model.network.to(device),
            {k: v.to(device) for k, v in model.state.items()},
            model.source,
            model.sha256,
            model.metadata,
        )

    # Bring the array to (planes..., Y, X[, S]).
    plane_axes = [i for i, a in enumerate(axes) if a not in "YXS"]
    order = plane_axes + [axes.index("Y"), axes.index("X")] + ([axes.index("S")] if "S" in axes else [])
    work = np.transpose(image, order)
    plane_shape = work.shape[: len(plane_axes)]
    h, w = work.shape[len(plane_axes)], work.shape[len(plane_axes) + 1]
    filler = _PlaneFiller(model, params, device)
    if min(h, w) < filler.min_side():
        raise InputError(
            f"the plane is too small ({h}x{w} pixels); MPI needs at least "
            f"{filler.min_side()}x{filler.min_side()} (pd_factor {params.pd_factor})"
        )

    # One intensity scale per channel of a stack (C axis), else one for all.
    c_pos = [axes[i] for i in plane_axes].index("C") if "C" in axes else None
    warnings: list[str] = []
    scales: dict[int, IntensityScale] = {}
    if c_pos is None:
        scales[0] = fit_scale(image, params.normalization)
    else:
        for ci in range(plane_shape[c_pos]):
            scales[ci] = fit_scale(np.take(work, ci, axis=c_pos), params.normalization)
    outside = sum(s.outside for s in scales.values())
    if outside:
        warnings.append(
            f"{outside} pixel value(s) lie outside the fitted intensity range ({params.normalization}); "
            "the network cannot reproduce them exactly (use normalization='minmax' to include every value)"
        )

    denoised = np.empty(work.shape, dtype=np.float32)
    planes = list(np.ndindex(*plane_shape)) if plane_shape else [()]
    has_samples = "S" in axes
    start = time.perf_counter()
    net_c = model.network.channels

    def groups_of(index: tuple[int, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
        """The plane, and its parts filled separately, as (C, H, W) arrays in input units."""
        plane = work[index]  # (H, W) or (H, W, S)
        data = plane.astype(np.float64)
        if has_samples:
            colour = np.moveaxis(data[..., :3], -1, 0)  # RGBA: the alpha channel is kept as it is
            return plane, [colour] if net_c == 3 else [colour[i : i + 1] for i in range(3)]
        return plane, [data[None]]

    def store(index: tuple[int, ...], plane: np.ndarray, result: np.ndarray) -> None:
        if has_samples:
            out = plane.astype(np.float32).copy()
            out[..., :3] = np.moveaxis(result, 0, -1)
            denoised[index] = out
        else:
            denoised[index] = result[0]

    def scale_of(index: tuple[int, ...]) -> IntensityScale:
        return scales[index[c_pos] if c_pos is not None else 0]

    single_part = not has_samples or net_c == 3
    single_tile = len(plan_tiles(h, w, params.tile_size, params.tile_overlap)) == 1
    stack = stack_size(params, device, h, w, len(planes)) if single_part and single_tile else 1
    if stack > 1:
        # Stack mode: planes with their own weights in one set of kernels;
        # plane k gets the seed it gets one by one, so results agree.
        for first in range(0, len(planes), stack):
            chunk = planes[first : first + stack]
            loaded = [groups_of(index) for index in chunk]
            parts = [scale_of(index).forward(g[1][0]) for index, g in zip(chunk, loaded)]
            seeds = [params.seed + 7919 * (first + j) for j in range(len(chunk))]
            gen = filler.fill_stack(parts, seeds)
            try:
                while True:
                    t = next(gen)
                    yield Progress(
                        first + 1,
                        len(planes),
                        t,
                        params.iterations,
                        1,
                        1,
                        time.perf_counter() - start,
                        None,
                        len(chunk),
                    )
            except StopIteration as stop:
                for index, (plane, _), result in zip(chunk, loaded, stop.value):
                    store(index, plane, scale_of(index).inverse(result))
        planes = []  # all done
    for p_idx, index in enumerate(planes):
        scale = scale_of(index)
        plane, groups = groups_of(index)
        filled = []
        for g_idx, group in enumerate(groups):
            scaled = scale.forward(group)
            seed = params.seed + 7919 * p_idx + 104729 * g_idx
            gen = filler.fill(scaled, seed)
            try:
                while True:
                    tile, tiles, t = next(gen)
                    preview = None
                    if preview_every and (t % preview_every == 0 or t == params.iterations) and tiles == 1:
                        avg = filler.filler.running_average
                        if avg is not None:
                            arr = pixel_shuffle_merge(avg, params.pd_factor)[0, :, :h, :w]
                            arr = arr.mean(dim=0) if not has_samples else arr.permute(1, 2, 0)
                            preview = scale.inverse(arr.detach().float().cpu().numpy())
                    yield Progress(
                        p_idx + 1, len(planes), t, params.iterations, tile, tiles, time.perf_counter() - start, preview
                    )
            except StopIteration as stop:
                filled.append(stop.value)
        store(index, plane, scale.inverse(np.concatenate(filled, axis=0)))
    seconds = time.perf_counter() - start

    inverse_order = np.argsort(order)
    denoised = np.ascontiguousarray(np.transpose(denoised, inverse_order))
    noise_map = image.astype(np.float32) - denoised
    return DenoiseResult(
        denoised=denoised,
        noise_map=noise_map,
        params=params,
        axes=axes,
        model=model.source,
        model_sha256=model.sha256,
        device=str(device),
        seconds=seconds,
        precision=resolve_precision(params.precision, device),
        scales=[(s.low, s.high) for s in scales.values()],
        warnings=warnings,
    )
