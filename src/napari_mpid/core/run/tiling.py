"""Overlapping tiles with seamless blending, for planes too large to fill at once.

Every tile is filled on its own (fine-tuned from the pre-trained weights, with
its own BatchNorm statistics), so neighbouring tiles may differ slightly. In
the overlap the two results are cross-faded with raised-cosine weights that
sum to one, so there is no step at the boundary, only a smooth transition
over ``overlap`` pixels.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

__all__ = ["BlendWeights", "Tile", "axis_tiles", "blend_weights", "plan_tiles", "tile_starts"]


@dataclass(frozen=True)
class Tile:
    """One tile: the slice it covers and its blending weights ``(h, w)``."""

    top: int
    left: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)


def axis_tiles(length: int, tile: int, overlap: int) -> tuple[list[int], int]:
    """Start offsets and the common size of the tiles along one axis.

    The fewest tiles of at most ``tile`` pixels that overlap by at least
    ``overlap``, all of the same size and evenly spaced from edge to edge
    (a 2048-pixel side with tile 1024 and overlap 64 gets 3 tiles of 726,
    not 3 of 1024 with the last one pushed back: about half the pixel work).
    """
    if length <= tile:
        return [0], length
    count = -(-(length - overlap) // (tile - overlap))
    while True:
        count = max(count, 2)
        size = -(-(length + (count - 1) * overlap) // count)
        while size <= tile:
            starts = [(i * (length - size)) // (count - 1) for i in range(count)]
            if all(starts[i] + size - starts[i + 1] >= overlap for i in range(count - 1)):
                return starts, size
            size += 1
        count += 1


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets along one axis (see :func:`axis_tiles`)."""
    return axis_tiles(length, tile, overlap)[0]


def plan_tiles(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """Cover a ``height x width`` plane with equal, evenly spaced tiles of at most ``tile`` pixels."""
    tops, tile_h = axis_tiles(height, tile, overlap)
    lefts, tile_w = axis_tiles(width, tile, overlap)
    return [Tile(top, left, tile_h, tile_w) for top in tops for left in lefts]


def _ramp(length: int, start: int, end: int, total: int, overlap_before: int, overlap_after: int) -> np.ndarray:
    w = np.ones(length, dtype=np.float64)
    if start > 0 and overlap_before > 0:
        n = overlap_before
        w[:n] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
    if end < total and overlap_after > 0:
        n = overlap_after
        w[length - n :] *= 0.5 + 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
    return w


class BlendWeights(Sequence[np.ndarray]):
    """Per-tile weights that sum to exactly one at every pixel of the plane, computed on demand.

    ``weights[k]`` is tile k's ``(height, width)`` float32 array. Inside each
    overlap the weights follow a raised cosine; they are then divided by
    their sum, which makes irregular overlaps exact too. Only the tiles that
    overlap tile k enter its sum (in list order, so the values do not depend
    on how many tiles there are), so memory is that of a few tiles whatever
    the plane's size; computed arrays are kept up to :data:`CACHE_BYTES`.
    """

    #: Computed weights kept for later calls, in bytes (the first tiles asked for).
    CACHE_BYTES = 64 * 2**20

    def __init__(self, tiles: Sequence[Tile], height: int, width: int) -> None:
        self.tiles = list(tiles)
        self.height, self.width = int(height), int(width)
        tops = sorted({u.top for u in self.tiles})
        lefts = sorted({u.left for u in self.tiles})
        self._tops = {top: i for i, top in enumerate(tops)}
        self._lefts = {left: j for j, left in enumerate(lefts)}
        self._top_list, self._left_list = tops, lefts
        # Tiles by top, to find the ones overlapping a tile without looking at all of them.
        self._by_top = sorted(range(len(self.tiles)), key=lambda n: self.tiles[n].top)
        self._sorted_tops = [self.tiles[n].top for n in self._by_top]
        self._max_height = max((u.height for u in self.tiles), default=0)
        self._cache: dict[int, np.ndarray] = {}
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self.tiles)

    @overload
    def __getitem__(self, k: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, k: slice) -> list[np.ndarray]: ...

    def __getitem__(self, k: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(k, slice):
            return [self[n] for n in range(*k.indices(len(self)))]
        n = range(len(self))[k]  # IndexError out of range; negative indices allowed
        if n in self._cache:
            return self._cache[n]
        weight = self._compute(n)
        if self._cached_bytes + weight.nbytes <= self.CACHE_BYTES:
            self._cache[n] = weight
            self._cached_bytes += weight.nbytes
        return weight

    def _raw(self, t: Tile) -> np.ndarray:
        """Tile t's raised-cosine weights before normalisation, float64."""
        tops, lefts = self._top_list, self._left_list
        i, j = self._tops[t.top], self._lefts[t.left]
        # Overlap with the neighbour before/after along each axis.
        ov_up = (tops[i - 1] + t.height - t.top) if i > 0 else 0
        ov_down = (t.top + t.height - tops[i + 1]) if i + 1 < len(tops) else 0
        ov_left = (lefts[j - 1] + t.width - t.left) if j > 0 else 0
        ov_right = (t.left + t.width - lefts[j + 1]) if j + 1 < len(lefts) else 0
        wy = _ramp(t.height, t.top, t.top + t.height, self.height, ov_up, ov_down)
        wx = _ramp(t.width, t.left, t.left + t.width, self.width, ov_left, ov_right)
        return np.outer(wy, wx)

    def _overlapping(self, t: Tile) -> list[int]:
        """Numbers of the tiles that share pixels with t (t included), in list order."""
        lo = bisect.bisect_left(self._sorted_tops, t.top - self._max_height + 1)
        hi = bisect.bisect_left(self._sorted_tops, t.top + t.height)
        found = []
        for n in self._by_top[lo:hi]:
            u = self.tiles[n]
            if (
                u.top < t.top + t.height
                and t.top < u.top + u.height
                and u.left < t.left + t.width
                and t.left < u.left + u.width
            ):
                found.append(n)
        return sorted(found)

    def _compute(self, n: int) -> np.ndarray:
        t = self.tiles[n]
        total = np.zeros((t.height, t.width), dtype=np.float64)
        for m in self._overlapping(t):
            u = self.tiles[m]
            top, bottom = max(t.top, u.top), min(t.top + t.height, u.top + u.height)
            left, right = max(t.left, u.left), min(t.left + t.width, u.left + u.width)
            region = self._raw(u)[top - u.top : bottom - u.top, left - u.left : right - u.left]
            total[top - t.top : bottom - t.top, left - t.left : right - t.left] += region
        return (self._raw(t) / total).astype(np.float32)


def blend_weights(tiles: Sequence[Tile], height: int, width: int) -> BlendWeights:
    """Per-tile weights that sum to exactly one at every pixel of the plane (see :class:`BlendWeights`).

    Nothing is computed here: ``blend_weights(...)[k]`` computes tile k's
    weights when asked, so planning a huge plane allocates nothing per pixel.
    """
    return BlendWeights(tiles, height, width)
