"""On-disk result arrays for lazy inputs, shown as dask-backed layers.

A dask, zarr or multiscale layer may not fit in memory, so its results do
not either: the engine writes each finished plane into a
:class:`PlaneStore`, a float32 array in a temporary directory of its own
(a zarr array when zarr is installed, else a ``.npy`` memory map), and the
result layers show it through dask. The directory lives as long as the
store: it is removed when the last dask array (hence the last layer) using
it is gone, or when Python exits.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PlaneStore", "is_in_memory", "pyramid"]

#: Chunk side along Y and X: small enough that napari reads little more than it shows.
CHUNK_SIDE = 1024


def is_in_memory(data: Any) -> bool:
    """Whether layer data is an ordinary in-memory numpy array (not a memory map, dask or zarr array)."""
    return isinstance(data, np.ndarray) and not isinstance(data, np.memmap)


class PlaneStore:
    """A float32 array of ``shape`` on disk, written plane by plane, read lazily.

    Parameters
    ----------
    shape : sequence of int
        The input's shape.
    axes : str
        Its axes (see :mod:`napari_mpid.core.run.axes`): one chunk per plane
        along the plane axes, :data:`CHUNK_SIDE` along Y and X, the whole S axis.
    name : str
        Part of the temporary directory's name (e.g. "denoised").
    """

    def __init__(self, shape: Sequence[int], axes: str, name: str) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(np.float32)
        self.ndim = len(self.shape)
        self.chunks = tuple(
            (min(n, CHUNK_SIDE) if a in "YX" else n) if a in "YXS" else 1 for n, a in zip(self.shape, axes)
        )
        # The TemporaryDirectory's own finalizer removes the directory with this object.
        self._directory = tempfile.TemporaryDirectory(prefix=f"napari-mpid-{name}-", ignore_cleanup_errors=True)
        self.path = Path(self._directory.name)
        try:
            import zarr
        except ImportError:
            self.array: Any = np.lib.format.open_memmap(
                self.path / "data.npy", mode="w+", dtype=self.dtype, shape=self.shape
            )
        else:
            self.array = zarr.open_array(
                store=str(self.path / "data.zarr"),
                mode="w",
                shape=self.shape,
                chunks=self.chunks,
                dtype=self.dtype,
                fill_value=0.0,
            )

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.array[key])

    def __setitem__(self, key: Any, value: np.ndarray) -> None:
        self.array[key] = value

    def to_dask(self) -> Any:
        """A dask array over the store (keeps the store, hence its directory, alive)."""
        import dask.array as da

        # An explicit name: dask would otherwise hash the whole array to make one.
        return da.from_array(self, chunks=self.chunks, name=f"napari-mpid-{uuid.uuid4().hex}", lock=False)


def pyramid(data: Any, shapes: Sequence[Sequence[int]]) -> list[Any]:
    """Lazy levels of ``data`` for a multiscale layer with levels of ``shapes`` (level 0 is ``data``).

    Each level is a strided view of ``data`` (every k-th pixel, k the ratio of
    level 0's size to the level's along each axis), so a zoomed-out view reads
    the full-resolution chunks it covers; nothing is computed in advance.
    """
    levels = [data]
    for shape in shapes[1:]:
        steps = tuple(max(1, round(n0 / max(n, 1))) for n0, n in zip(data.shape, shape))
        levels.append(data[tuple(slice(None, None, k) for k in steps)])
    return levels
