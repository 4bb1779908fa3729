"""Everything about a run that can be decided, and refused, before any compute.

:func:`make_plan` checks the input's dtype and axes against the parameters
and the model (plane and tile sizes after pixel-shuffle, the mask ratio the
model was trained for, how many planes to fill at once) and returns a
:class:`Plan`: which planes there are, how a plane is read from and written
to an array in the input's own axis order, its tiles and blend weights.
A bad combination raises :class:`~napari_mpid.core.errors.InputError` here,
never halfway through a run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from napari_mpid.core.errors import InputError
from napari_mpid.core.model.checkpoints import LoadedModel
from napari_mpid.core.params import FillParams
from napari_mpid.core.run.axes import resolve_axes
from napari_mpid.core.run.devices import resolve_precision
from napari_mpid.core.run.tiling import Tile, blend_weights, plan_tiles

__all__ = [
    "BYTES_PER_PIXEL",
    "Plan",
    "auto_tile_size",
    "make_plan",
    "memory_budget",
    "model_mask_ratio",
    "plane_seed",
    "stack_size",
]

#: Peak memory of one filling iteration per pixel of a tile, by arithmetic
#: (measured on CPU with the 1-channel network, 256-768 px tiles: 6.1-6.8 kB
#: float32, 3.5-3.9 kB bf16, asymptotically; plus ~100 MB for the process).
BYTES_PER_PIXEL = {"float32": 6_800, "bfloat16": 3_900}
#: Default CPU budget: half of the available RAM, at most this (GiB).
CPU_BUDGET_CAP_GIB = 2.0

#: Seed strides of :func:`plane_seed` (primes, so that plane, part and tile never collide in practice).
_PLANE_STRIDE = 7919
_PART_STRIDE = 104729
_GENERATOR_STRIDE = 1_000_003


def plane_seed(seed: int, plane: int, part: int = 0, tile: int = 0) -> int:
    """Seed of the mask generator of one plane, colour part and tile.

    Every plane's masks depend only on the run's seed and the plane's place
    in the stack, so a plane gives the same result whether it is filled
    alone, in a stack, after a resume or on another Dask worker.
    """
    return (seed + _PLANE_STRIDE * plane + _PART_STRIDE * part) * _GENERATOR_STRIDE + tile


def model_mask_ratio(model: LoadedModel) -> tuple[float, str]:
    """The mask ratio a model is meant to be filled with, and where that comes from.

    In order: ``metadata["filling_mask_ratio"]`` (the bundled registry sets
    it); the middle of the pre-training range in ``metadata["mask_scheme"]``,
    rounded down to a multiple of 0.05 (80-95 % gives 0.85 and 30 % gives
    0.30, the paper's filling ratios); for the authors' checkpoints, their
    published settings (0.85 for a shared mask, 0.30 for per-channel masks).
    """
    meta = model.metadata or {}
    if "filling_mask_ratio" in meta:
        return float(meta["filling_mask_ratio"]), f"recorded in model {model.source}"
    scheme = meta.get("mask_scheme") or {}
    if "mask_ratio_min" in scheme and "mask_ratio_max" in scheme:
        middle = (float(scheme["mask_ratio_min"]) + float(scheme["mask_ratio_max"])) / 2
        ratio = round(np.floor(middle * 20 + 1e-9) / 20, 2)
        span = f"{scheme['mask_ratio_min']:.2f}-{scheme['mask_ratio_max']:.2f}"
        return ratio, f"model {model.source} was pre-trained with {span} masks"
    if model.network.multi_channel_mask:
        return 0.30, f"model {model.source} has per-channel masks (the paper's 30 % setting)"
    return 0.85, f"model {model.source} has a shared mask (the paper's 85 % setting)"


def memory_budget(params: FillParams, device: torch.device) -> tuple[float, str]:
    """Bytes a run may spend on the network's activations, and where the figure comes from."""
    if params.memory_limit:
        return params.memory_limit * 2**30, f"memory_limit {params.memory_limit:g} GiB"
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return 0.8 * free, f"80 % of the free memory of {device}"
    try:
        import psutil

        available = psutil.virtual_memory().available
    except ImportError:  # pragma: no cover - psutil is a dependency
        available = 8 * 2**30
    budget = min(0.5 * available, CPU_BUDGET_CAP_GIB * 2**30)
    return budget, f"{budget / 2**30:.1f} GiB (half the available RAM, at most {CPU_BUDGET_CAP_GIB:g} GiB)"


def auto_tile_size(budget: float, precision: str, channels: int = 1) -> int:
    """The largest square tile side (a multiple of 32, 128 to 4096) whose filling fits ``budget`` bytes."""
    per_pixel = BYTES_PER_PIXEL.get(precision, BYTES_PER_PIXEL["float32"]) * (1 + 0.1 * (channels - 1))
    side = int((max(budget - 100e6, 0) / per_pixel) ** 0.5) // 32 * 32
    return max(128, min(4096, side))


def stack_size(params: FillParams, device: torch.device, height: int, width: int, planes: int) -> int:
    """How many planes to fill at once: ``params.stack_planes``, or chosen from free memory.

    0 (automatic) stacks only on CUDA, where one plane leaves the GPU idle;
    it budgets ~10 kB of activations and gradients per pixel and plane (an
    unmeasured estimate: ~30 float32 activations of 64 channels per pixel,
    kept for the backward pass) within 60 % of the free device memory, and
    at most 32 planes.
    """
    if params.stack_planes:
        return max(1, min(params.stack_planes, planes))
    if device.type != "cuda":
        return 1
    free, _ = torch.cuda.mem_get_info(device)
    per_plane = 10_000 * height * width
    return int(max(1, min(32, planes, (0.6 * free) // per_plane)))


@dataclass(frozen=True)
class Plan:
    """How a run walks an array: planes, parts, tiles; resolved parameters.

    Attributes
    ----------
    shape, axes : tuple of int, str
        The input's shape and its resolved axes (input order).
    planes : list of tuple
        Index of every plane over the plane axes (all axes but Y, X, S), in
        C order; a plane's position in this list is its number.
    height, width : int
        Plane size.
    samples : int
        Colour samples per pixel (3 or 4), 0 without an S axis.
    parts : int
        Separately filled groups of channels per plane: 3 for RGB with a
        1-channel model, else 1.
    tiles, weights : list, sequence
        Tiles of a plane and their blend weights (``weights[k]``: tile k's,
        computed when asked, see :class:`~napari_mpid.core.run.tiling.BlendWeights`;
        empty for one tile).
    stack : int
        Planes filled at once (stack mode) when > 1.
    params : FillParams
        The parameters as used: the mask ratio and stack size resolved.
    notes : list of str
        What was resolved automatically and why (for the result's metadata).
    series : list of list of int
        Context filling: the plane numbers of every stack along the context
        axis, in axis order (one network is fitted per series); with
        ``static_scene``, the exposures averaged into one plane. Empty when
        every plane is filled alone.
    """

    shape: tuple[int, ...]
    axes: str
    planes: list[tuple[int, ...]]
    height: int
    width: int
    samples: int
    parts: int
    tiles: list[Tile]
    weights: Sequence[np.ndarray]
    stack: int
    params: FillParams
    notes: list[str] = field(default_factory=list)
    series: list[list[int]] = field(default_factory=list)

    @property
    def context(self) -> int:
        """Neighbour planes on each side (0: every plane alone)."""
        return self.params.context or 0

    @property
    def plane_axes(self) -> list[int]:
        """Positions of the plane axes in the input."""
        return [i for i, a in enumerate(self.axes) if a not in "YXS"]

    @property
    def channel_position(self) -> int | None:
        """Position of the C axis within a plane index, None without C."""
        letters = [self.axes[i] for i in self.plane_axes]
        return letters.index("C") if "C" in letters else None

    def key(self, plane: tuple[int, ...]) -> tuple[Any, ...]:
        """Index of one plane into an array of the input's shape (ints on plane axes, full slices elsewhere)."""
        values = iter(plane)
        return tuple(next(values) if a not in "YXS" else slice(None) for a in self.axes)

    def _plane_order(self) -> list[int]:
        """Order that brings a plane read with :meth:`key` to (Y, X[, S])."""
        rest = [a for a in self.axes if a in "YXS"]
        return [rest.index(a) for a in "YXS" if a in rest]

    def read(self, source: Any, plane: tuple[int, ...]) -> np.ndarray:
        """One plane of ``source`` (any array-like of the input's shape) as a numpy array (Y, X[, S])."""
        data = np.asarray(source[self.key(plane)])
        return np.transpose(data, self._plane_order())

    def write(self, target: Any, plane: tuple[int, ...], data: np.ndarray) -> None:
        """Store a (Y, X[, S]) plane into ``target`` (an array-like of the input's shape)."""
        target[self.key(plane)] = np.transpose(data, np.argsort(self._plane_order()))


def make_plan(
    shape: tuple[int, ...],
    dtype: np.dtype,
    params: FillParams,
    model: LoadedModel,
    device: torch.device,
    *,
    axes: str | None = None,
    rgb: bool | None = None,
) -> Plan:
    """Validate an input against the parameters and the model; return its :class:`Plan`.

    Raises
    ------
    InputError
        Empty input, unsupported dtype, bad axes, a plane or tile too small for
        the network after pixel-shuffle, or a parameter the model cannot use.
    """
    shape = tuple(int(n) for n in shape)
    dtype = np.dtype(dtype)
    if int(np.prod(shape, dtype=np.int64)) == 0:
        raise InputError(f"the image is empty (shape {shape})")
    if dtype.kind not in "uifb":
        raise InputError(f"unsupported data type {dtype}; expected integers or floats")
    axes = resolve_axes(shape, axes, rgb)
    h, w = shape[axes.index("Y")], shape[axes.index("X")]
    samples = shape[axes.index("S")] if "S" in axes else 0
    net = model.network
    f = params.pd_factor
    min_side = net.min_size * f
    if min(h, w) < min_side:
        raise InputError(
            f"the plane is too small ({h}x{w} pixels); MPI needs at least {min_side}x{min_side}"
            + (f" with pd_factor {f}" if f > 1 else "")
        )
    notes: list[str] = []
    changes: dict[str, Any] = {}
    precision = resolve_precision(params.precision, device)
    if precision != params.precision:
        changes["precision"] = precision
    tile_size = params.tile_size
    if not tile_size:
        budget, why = memory_budget(params, device)
        tile_size = max(auto_tile_size(budget, precision, net.channels), min_side + 2 * params.tile_overlap + 1)
        changes["tile_size"] = tile_size
        if max(h, w) > tile_size:
            notes.append(f"tile_size {tile_size}: the largest tile that fits {why}")
    tiles = plan_tiles(h, w, tile_size, params.tile_overlap)
    smallest = min(min(t.height, t.width) for t in tiles)
    if smallest < min_side:
        raise InputError(
            f"tile_size {tile_size} (overlap {params.tile_overlap}) makes {smallest}-pixel tiles, but the "
            f"network needs at least {min_side} pixels per side"
            + (f" with pd_factor {f} ({net.min_size} per sub-image)" if f > 1 else "")
            + f"; use tile_size >= {min_side + 2 * params.tile_overlap}"
            + (" or a smaller pd_factor" if f > 1 else "")
        )
    weights = blend_weights(tiles, h, w) if len(tiles) > 1 else []

    if params.mask_ratio is None:
        ratio, why = model_mask_ratio(model)
        changes["mask_ratio"] = ratio
        notes.append(f"mask ratio {ratio:.2f}: {why}")
    parts = 3 if samples and net.channels == 1 else 1
    plane_shape = tuple(n for n, a in zip(shape, axes) if a not in "YXS")
    planes = list(np.ndindex(*plane_shape)) if plane_shape else [()]
    stack = stack_size(params, device, h, w, len(planes)) if parts == 1 and len(tiles) == 1 else 1
    if stack != params.stack_planes:
        changes["stack_planes"] = stack
        if stack > 1:
            notes.append(f"stack_planes {stack}: chosen from free GPU memory")
        elif params.stack_planes > 1:
            kind = "tiled" if len(tiles) > 1 else "colour-split"
            notes.append(f"stack_planes 1: {kind} planes are filled one by one")
    if params.static_scene:
        context, (context_axis, series) = 0, _static_series(params, axes, shape, planes, notes)
    else:
        context, context_axis, series = _context(params, axes, shape, planes, parts, notes)
    if context != params.context or context_axis != params.context_axis:
        changes.update(context=context, context_axis=context_axis)
    if context or params.static_scene:
        stack = 1
        changes["stack_planes"] = 1
    resolved = dataclasses.replace(params, **changes) if changes else params
    return Plan(shape, axes, planes, h, w, samples, parts, tiles, weights, stack, resolved, notes, series)


#: Context filling when ``FillParams.context`` is None (automatic): this many
#: neighbours on each side, for stacks of at least MIN_CONTEXT_PLANES planes
#: (chosen on the neuron Z-stack among 1-3, checked on the held-out stacks:
#: docs/constants.md).
DEFAULT_CONTEXT = 2
MIN_CONTEXT_PLANES = 3


def _context(
    params: FillParams, axes: str, shape: tuple[int, ...], planes: list[tuple[int, ...]], parts: int, notes: list[str]
) -> tuple[int, str, list[list[int]]]:
    """Resolve ``context`` and ``context_axis``; group plane numbers into series along that axis."""
    requested = params.context
    if params.context_axis == "auto":
        axis = next((a for a in "ZT" if a in axes), None)
    else:
        axis = params.context_axis
        if axis not in axes:
            raise InputError(
                f"context_axis {axis!r} is not an axis of the data (axes {axes!r}); choose one the data has, or 'auto'"
            )
    if requested == 0:
        return 0, params.context_axis, []
    if axis is None:
        if requested:
            raise InputError(
                f"context {requested} needs a stack axis (Z, T or Q) but the data has axes {axes!r}; "
                "use context 0 for single planes, or name the stack axis (axes / context_axis)"
            )
        return 0, params.context_axis, []
    length = shape[axes.index(axis)]
    if requested is None:
        if length < MIN_CONTEXT_PLANES or parts > 1:
            return 0, params.context_axis, []
        requested = DEFAULT_CONTEXT
        notes.append(f"context {requested}: neighbour planes along {axis} ({length} planes)")
    if length < 2:
        raise InputError(f"context {requested} needs at least 2 planes along {axis}, the data has {length}")
    if parts > 1:
        raise InputError(
            "context filling of RGB data needs a 3-channel model (e.g. model 'pixel-independent'); "
            "the 1-channel model fills colours one by one"
        )
    if requested > length - 1:
        # Farther neighbours than the stack is long would only repeat planes (reflected at the ends).
        notes.append(
            f"context {length - 1}: {length} planes along {axis} give at most {length - 1} neighbour(s) "
            f"on each side ({requested} asked)"
        )
        requested = length - 1
    return requested, axis, _series(axes, planes, axis)


def _series(axes: str, planes: list[tuple[int, ...]], axis: str) -> list[list[int]]:
    """Plane numbers grouped by everything but ``axis``, each group in ``axis`` order."""
    position = [axes[i] for i, a in enumerate(axes) if a not in "YXS"].index(axis)
    groups: dict[tuple[int, ...], list[int]] = {}
    for number, index in enumerate(planes):
        groups.setdefault(index[:position] + index[position + 1 :], []).append(number)
    return [sorted(numbers, key=lambda n: planes[n][position]) for numbers in groups.values()]


def _static_series(
    params: FillParams, axes: str, shape: tuple[int, ...], planes: list[tuple[int, ...]], notes: list[str]
) -> tuple[str, list[list[int]]]:
    """``static_scene``: the stack axis (``context_axis``, "auto": Z, else T) and the series of repeated exposures."""
    axis = next((a for a in "ZT" if a in axes), None) if params.context_axis == "auto" else params.context_axis
    if axis is None or axis not in axes:
        named = "" if params.context_axis == "auto" else f" ({params.context_axis!r} is not one)"
        raise InputError(
            f"static_scene averages repeated exposures along a stack axis (Z, T or Q), but the data has axes "
            f"{axes!r}{named}; name the axis of the exposures (axes / context_axis)"
        )
    length = shape[axes.index(axis)]
    if length < 2:
        raise InputError(f"static_scene needs at least 2 exposures along {axis}, the data has {length}")
    notes.append(f"static scene: the {length} planes along {axis} are averaged and denoised as one")
    return axis, _series(axes, planes, axis)
