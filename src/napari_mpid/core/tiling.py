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

__all__ = ["Tile", "blend_weights", "plan_tiles", "tile_starts"]


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


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets along one axis; the last tile ends flush with the edge."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def plan_tiles(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """Cover a ``height x width`` plane with tiles of at most ``tile`` pixels."""
    return [
        Tile(top, left, min(tile, height), min(tile, width))
        for top in tile_starts(height, tile, overlap)
        for left in tile_starts(width, tile, overlap)
    ]


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
    divided by their sum, which makes irregular overlaps (the last, flush
    tile) exact too.
    """
    weights = []
    for t in tiles:
        # Overlap with the neighbour before/after along each axis.
        tops = sorted({u.top for u in tiles})
        lefts = sorted({u.left for u in tiles})
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
