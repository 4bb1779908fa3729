"""Overlapping tiles with seamless blending, for planes too large to fill at once.

Every tile is filled on its own (fine-tuned from the pre-trained weights, with
its own BatchNorm statistics), so neighbouring tiles may differ slightly. In
the overlap the two results are cross-faded with raised-cosine weights that
sum to one, so there is no step at the boundary, only a smooth transition
over ``overlap`` pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Tile", "axis_tiles", "blend_weights", "plan_tiles", "tile_starts"]


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


def blend_weights(tiles: list[Tile], height: int, width: int) -> list[np.ndarray]:
    """Per-tile weights that sum to exactly one at every pixel of the plane.

    Inside each overlap the weights follow a raised cosine; they are then
    divided by their sum, which makes irregular overlaps exact too.
    """
    weights = []
    tops = sorted({u.top for u in tiles})
    lefts = sorted({u.left for u in tiles})
    for t in tiles:
        # Overlap with the neighbour before/after along each axis.
        i, j = tops.index(t.top), lefts.index(t.left)
        ov_up = (tops[i - 1] + t.height - t.top) if i > 0 else 0
        ov_down = (t.top + t.height - tops[i + 1]) if i + 1 < len(tops) else 0
        ov_left = (lefts[j - 1] + t.width - t.left) if j > 0 else 0
        ov_right = (t.left + t.width - lefts[j + 1]) if j + 1 < len(lefts) else 0
        wy = _ramp(t.height, t.top, t.top + t.height, height, ov_up, ov_down)
        wx = _ramp(t.width, t.left, t.left + t.width, width, ov_left, ov_right)
        weights.append(np.outer(wy, wx))
    total = np.zeros((height, width), dtype=np.float64)
    for t, w in zip(tiles, weights):
        total[t.slices] += w
    return [(w / total[t.slices]).astype(np.float32) for t, w in zip(tiles, weights)]
