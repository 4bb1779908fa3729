"""Array-likes for data larger than memory: file regions, stored layouts, casting (numpy only).

The engine reads and writes one plane at a time through ``array[key]`` with
integers on the plane axes and full slices on Y, X (and S). These classes give
it files to read from and write to without ever holding a whole stack:

- :class:`MappedArray`: a contiguous region of a file (an uncompressed TIFF's
  pixels), memory-mapped for the duration of one read or write only, so the
  pages do not pile up in the process's resident memory.
- :class:`LayoutArray`: an array in our axes (e.g. ``"QQYX"``) over a stored
  array whose file format wants other axes (e.g. OME-TIFF's ``"QYX"``): the
  stored array is our array transposed and with some neighbouring axes folded
  into one (see :class:`Layout`).
- :class:`CastingArray`: stores float planes into an integer output, rounded
  and clipped to the type's range.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np

__all__ = ["CastingArray", "Layout", "LayoutArray", "MappedArray", "cast_to", "full_key"]


@dataclass(frozen=True)
class Layout:
    """How an array in our axes is stored: transposed, then neighbouring axes folded.

    Attributes
    ----------
    axes : str
        Our axes (see :mod:`napari_mpid.core.run.axes`), one letter per dimension.
    shape : tuple of int
        Our shape.
    order : tuple of int
        Our axes in stored order (a permutation of ``range(len(axes))``).
    groups : tuple of int
        How many consecutive axes (in stored order) each stored axis holds;
        sums to ``len(axes)``.
    stored_axes : str
        One letter per stored axis (the file format's names).
    """

    axes: str
    shape: tuple[int, ...]
    order: tuple[int, ...]
    groups: tuple[int, ...]
    stored_axes: str

    @classmethod
    def identity(cls, axes: str, shape: tuple[int, ...]) -> Layout:
        """Stored exactly as it is."""
        n = len(shape)
        return cls(axes, tuple(shape), tuple(range(n)), (1,) * n, axes)

    @property
    def is_identity(self) -> bool:
        """Whether stored and our array are the same."""
        return self.order == tuple(range(len(self.order))) and all(g == 1 for g in self.groups)

    def members(self) -> list[list[int]]:
        """Our axes held by each stored axis, in stored order."""
        out, start = [], 0
        for size in self.groups:
            out.append(list(self.order[start : start + size]))
            start += size
        return out

    @property
    def stored_shape(self) -> tuple[int, ...]:
        """Shape of the stored array."""
        return tuple(prod(self.shape[i] for i in group) for group in self.members())

    def to_stored(self, data: np.ndarray) -> np.ndarray:
        """Our array -> the stored array (a view where numpy can)."""
        return np.asarray(data).transpose(self.order).reshape(self.stored_shape)

    def to_ours(self, stored: np.ndarray) -> np.ndarray:
        """The stored array -> our array."""
        stored = np.asarray(stored).reshape([self.shape[i] for i in self.order])
        return stored.transpose(np.argsort(self.order))

    def record(self) -> dict[str, Any]:
        """JSON-friendly description (stored next to the data, read by :meth:`from_record`)."""
        return {
            "axes": self.axes,
            "shape": list(self.shape),
            "order": list(self.order),
            "groups": list(self.groups),
            "stored_axes": self.stored_axes,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Layout:
        """Inverse of :meth:`record`."""
        return cls(
            str(record["axes"]),
            tuple(int(n) for n in record["shape"]),
            tuple(int(n) for n in record["order"]),
            tuple(int(n) for n in record["groups"]),
            str(record["stored_axes"]),
        )


def full_key(key: Any, ndim: int) -> list[Any]:
    """``key`` as a list of ``ndim`` ints and slices (Ellipsis expanded)."""
    items = list(key) if isinstance(key, tuple) else [key]
    if any(k is Ellipsis for k in items):
        at = next(i for i, k in enumerate(items) if k is Ellipsis)
        items = items[:at] + [slice(None)] * (ndim - len(items) + 1) + items[at + 1 :]
    items += [slice(None)] * (ndim - len(items))
    if len(items) != ndim or not all(isinstance(k, (slice, int, np.integer)) for k in items):
        raise IndexError(f"unsupported index {key!r} for a {ndim}-D array")
    return [int(k) if isinstance(k, (int, np.integer)) else k for k in items]


def _is_full(k: Any, size: int) -> bool:
    return isinstance(k, slice) and k.indices(size) == (0, size, 1)


class LayoutArray:
    """Our array over a stored array (see :class:`Layout`); reads and writes whole planes.

    Keys are ints and slices; on a folded stored axis, the keys of its axes
    must be ints followed by full slices (which a plane's key always is).
    """

    def __init__(self, base: Any, layout: Layout) -> None:
        self.base = base
        self.layout = layout
        self.shape = layout.shape
        self.dtype = np.dtype(base.dtype)
        self.ndim = len(self.shape)

    def _map(self, key: Any) -> tuple[tuple[Any, ...], list[int], list[int]]:
        """Stored key; our remaining axes in stored order; the shape they have there."""
        ours = full_key(key, self.ndim)
        for i, k in enumerate(ours):
            if isinstance(k, int) and not -self.shape[i] <= k < self.shape[i]:
                raise IndexError(f"index {k} is out of bounds for axis {i} with size {self.shape[i]}")
            if isinstance(k, int) and k < 0:
                ours[i] = k + self.shape[i]
        stored_key: list[Any] = []
        remaining: list[int] = []
        sizes: list[int] = []
        for group in self.layout.members():
            keys = [ours[i] for i in group]
            if len(group) == 1:
                stored_key.append(keys[0])
                if not isinstance(keys[0], int):
                    remaining.append(group[0])
                    sizes.append(len(range(*keys[0].indices(self.shape[group[0]]))))
                continue
            n_ints = 0
            while n_ints < len(keys) and isinstance(keys[n_ints], int):
                n_ints += 1
            if not all(_is_full(k, self.shape[i]) for k, i in zip(keys[n_ints:], group[n_ints:])):
                raise IndexError("a folded axis can only be indexed with ints followed by full slices")
            dims = [self.shape[i] for i in group]
            tail = prod(dims[n_ints:])
            start = int(np.ravel_multi_index(keys[:n_ints], dims[:n_ints])) * tail if n_ints else 0
            if n_ints == len(group):
                stored_key.append(start)
            else:
                stored_key.append(slice(start, start + tail))
                remaining += group[n_ints:]
                sizes += dims[n_ints:]
        return tuple(stored_key), remaining, sizes

    def __getitem__(self, key: Any) -> np.ndarray:
        stored_key, remaining, sizes = self._map(key)
        data = np.asarray(self.base[stored_key]).reshape(sizes)
        return data.transpose(np.argsort(remaining))

    def __setitem__(self, key: Any, value: Any) -> None:
        stored_key, remaining, sizes = self._map(key)
        ours = [sizes[remaining.index(i)] for i in sorted(remaining)]
        value = np.broadcast_to(np.asarray(value), ours).transpose(np.argsort(np.argsort(remaining)))
        group_sizes = [
            len(range(*k.indices(n))) for k, n in zip(stored_key, self.layout.stored_shape) if isinstance(k, slice)
        ]
        self.base[stored_key] = value.reshape(group_sizes)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return data if dtype is None else data.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]


class MappedArray:
    """A contiguous C-order array stored at ``offset`` in a file, mapped for one access at a time.

    Reads come back in native byte order whatever the file's.

    Each read copies the requested region out of a fresh memory map; each
    write goes through one and is flushed to disk (``msync``) before the
    map is closed. Several processes may write distinct planes of one file.
    """

    def __init__(
        self, path: str | os.PathLike, offset: int, shape: tuple[int, ...], dtype: Any, writable: bool
    ) -> None:
        self.path = os.fspath(path)
        self.offset = int(offset)
        self.shape = tuple(int(n) for n in shape)
        #: How the values are stored (possibly big-endian), and how they are read (native byte order).
        self.file_dtype = np.dtype(dtype)
        self.dtype = self.file_dtype.newbyteorder("=")
        self.ndim = len(self.shape)
        self.writable = writable

    def _map(self, mode: str) -> np.memmap:
        return np.memmap(self.path, self.file_dtype, mode, self.offset, self.shape, "C")

    def __getitem__(self, key: Any) -> np.ndarray:
        mapped = self._map("r")
        try:
            return np.array(mapped[key], dtype=self.dtype)
        finally:
            del mapped

    def __setitem__(self, key: Any, value: Any) -> None:
        if not self.writable:
            raise OSError(f"{self.path} is open read-only")
        mapped = self._map("r+")
        try:
            mapped[key] = value
            mapped.flush()
        finally:
            del mapped

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return data if dtype is None else data.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]


def cast_to(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``values`` in ``dtype``: integers rounded to nearest and clipped to the type's range."""
    dtype = np.dtype(dtype)
    values = np.asarray(values)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


class CastingArray:
    """Writes into ``base`` converted to its dtype with :func:`cast_to`; reads pass through."""

    def __init__(self, base: Any) -> None:
        self.base = base
        self.shape = tuple(base.shape)
        self.dtype = np.dtype(base.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.base[key])

    def __setitem__(self, key: Any, value: Any) -> None:
        self.base[key] = cast_to(value, self.dtype)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = np.asarray(self.base[...])
        return data if dtype is None else data.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]
