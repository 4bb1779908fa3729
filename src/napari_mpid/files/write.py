"""Writing images with their axes, pixel size and run metadata, under a temporary name, then renamed.

Whole arrays: :func:`write_tiff` and :func:`write_ome_zarr` (what the napari
writer and ``napari-mpid demo`` use). They take the same steps as the
command's outputs, which may be larger than memory:

An output is described by an :class:`OutputSpec` (plain data: it goes into
the resume journal and to Dask workers). :func:`create` makes the file under
its temporary name (``<name>.partial``) with its final shape, axes, pixel
size and data type, before any compute; :func:`open_array` gives an
array-like of the input's shape that the engine writes finished planes into,
each one on disk (``fsync``) when the write returns; :func:`finalize` stores
the run's metadata; :func:`commit` renames all outputs of a run to their
final names only once everything succeeded (and undoes the renames that
were done when one fails), :func:`discard` removes the temporary files.

TIFF: an ImageJ hyperstack where ImageJ can hold the axes and data type, else
OME-TIFF (plane axes folded into one Q axis where OME cannot hold them, e.g.
two Q axes; the layout is recorded in an OME MapAnnotation). Pixels are
stored uncompressed and contiguously so that each plane is a region of the
file; that region is reserved on disk when the file is created, and planes
are written with ``pwrite``, not through a memory map, so that a full disk
is an error (:class:`~napari_mpid.files.disk.DiskFullError`), not a signal that kills the process.
OME-Zarr: OME-NGFF 0.4 written with ome-zarr-py, one chunk per plane.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import re
import shutil
import warnings
from dataclasses import asdict, dataclass, field
from math import prod
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from .arrays import CastingArray, Layout, LayoutArray, MappedArray, full_key
from .disk import DiskFullError, fsync_directory, is_disk_full
from .formats import TIFF_SUFFIXES, is_zarr_path, require_ome_zarr
from .metadata import (
    LAYOUT_NAMESPACE,
    NGFF_UNITS,
    RUN_NAMESPACE,
    ZARR_ATTRIBUTE,
    encode_map_value,
    jsonable,
    map_annotation_xml,
    ome_unit,
)

__all__ = [
    "OutputSpec",
    "commit",
    "create",
    "discard",
    "finalize",
    "open_array",
    "partial_path",
    "plan_output",
    "write_array",
    "write_ome_zarr",
    "write_tiff",
]

#: ImageJ hyperstack axis order and data types.
_IMAGEJ_AXES = "TZCYXS"
_IMAGEJ_DTYPES = ("uint8", "uint16", "float32")
#: What the run annotation holds until :func:`finalize` writes the metadata.
_PENDING = {"status": "incomplete"}


def partial_path(path: str | Path) -> Path:
    """The temporary name an output is written under: ``<name>.partial`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


@dataclass
class OutputSpec:
    """What one output file holds and where (JSON-friendly: journal, Dask workers).

    Attributes
    ----------
    path, partial : str
        Final and temporary names.
    kind : str
        "imagej" or "ome" (TIFF) or "ngff" (OME-Zarr).
    axes, shape, dtype : str, list of int, str
        The array as the engine sees it (the input's axes and shape).
    layout : dict
        :meth:`napari_mpid.files.arrays.Layout.record` of how it is stored.
    scale, unit : dict, str or None
        Pixel size per axis letter and its unit.
    offset : int
        TIFF: where the pixels start in the file.
    dataset : str
        OME-Zarr: path of the full-resolution array in the group.
    """

    path: str
    partial: str
    kind: str
    axes: str
    shape: list[int]
    dtype: str
    layout: dict[str, Any]
    scale: dict[str, float] = field(default_factory=dict)
    unit: str | None = None
    offset: int = -1
    dataset: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (inverse: ``OutputSpec(**d)``)."""
        return asdict(self)


# --- layouts --------------------------------------------------------------------------------


def _ome_accepts(stored_axes: str, stored_shape: tuple[int, ...], dtype: np.dtype) -> bool:
    """Whether tifffile's OME-XML writer takes these axes (it refuses e.g. two Q axes)."""
    samples = stored_shape[-1] if stored_axes.endswith("S") else 1
    plane = stored_shape[stored_axes.index("Y") :]
    planes = prod(stored_shape[: stored_axes.index("Y")])
    stored = (planes, 1, 1, plane[0], plane[1], samples)
    try:
        tifffile.OmeXml().addimage(dtype, stored_shape, stored, axes=stored_axes)
    except Exception:  # OmeXmlError, or ValueError for shapes it cannot describe
        return False
    return True


def _tiff_layout(axes: str, shape: tuple[int, ...], dtype: np.dtype) -> tuple[str, Layout]:
    positions = [_IMAGEJ_AXES.find(a) for a in axes]
    if (
        -1 not in positions
        and positions == sorted(positions)
        and dtype.name in _IMAGEJ_DTYPES
        and ("S" not in axes or dtype == np.uint8)
    ):
        return "imagej", Layout.identity(axes, shape)
    # OME: the plane axes in their order, then Y, X (and S); fold the plane axes when OME refuses them.
    plane = [i for i, a in enumerate(axes) if a not in "YXS"]
    inner = [axes.index(a) for a in "YXS" if a in axes]
    order = tuple(plane + inner)
    letters = "".join(axes[i] for i in order)
    layout = Layout(axes, shape, order, (1,) * len(order), letters)
    if not _ome_accepts(layout.stored_axes, layout.stored_shape, dtype) and plane:
        stored = "Q" + "".join(axes[i] for i in inner)
        layout = Layout(axes, shape, order, (len(plane),) + (1,) * len(inner), stored)
    return "ome", layout


#: Our letters -> OME-NGFF axis names and types; the stored order is t, c, q, z, y, x.
_NGFF_AXIS = {"T": ("t", "time"), "C": ("c", "channel"), "Q": ("q", None), "Z": ("z", "space")}


def _ngff_layout(axes: str, shape: tuple[int, ...]) -> Layout:
    """t, then channel (C and RGB samples folded), then the other plane axes folded, then z, y, x.

    OME-NGFF allows at most 5 axes: with all six kinds present, the other
    plane axes are folded into the channel axis too.
    """
    blocks = [["T"], ["C", "S"], ["Q"], ["Z"], ["Y"], ["X"]]
    if all(any(a in block for a in axes) for block in blocks):
        blocks = [["T"], ["C", "Q", "S"], ["Z"], ["Y"], ["X"]]
    order: list[int] = []
    groups: list[int] = []
    stored = ""
    for block in blocks:
        members = [i for i, a in enumerate(axes) if a in block]
        members.sort(key=lambda i: (block.index(axes[i]), i))
        if not members:
            continue
        order += members
        groups.append(len(members))
        stored += "C" if "C" in block else block[0]
    return Layout(axes, tuple(shape), tuple(order), tuple(groups), stored)


def plan_output(
    path: str | Path,
    shape: tuple[int, ...],
    axes: str,
    dtype: Any,
    scale: dict[str, float] | None = None,
    unit: str | None = None,
) -> OutputSpec:
    """Decide how an output of ``shape``/``axes``/``dtype`` is stored at ``path`` (no file is touched).

    Raises
    ------
    ValueError
        Unsupported suffix or data type.
    MissingExtraError
        OME-Zarr without ome-zarr-py.
    """
    path = Path(path)
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in shape)
    if dtype.kind not in "uif":
        raise ValueError(f"cannot write data of type {dtype}")
    if is_zarr_path(path):
        require_ome_zarr()
        kind, layout = "ngff", _ngff_layout(axes, shape)
    elif path.suffix.lower() in TIFF_SUFFIXES:
        kind, layout = _tiff_layout(axes, shape, dtype)
    else:
        raise ValueError(f"output {path.name!r} must end in .tif, .tiff or .ome.zarr")
    scale = {k: float(v) for k, v in (scale or {}).items() if k in axes}
    return OutputSpec(
        str(path), str(partial_path(path)), kind, axes, list(shape), dtype.str, layout.record(), scale, unit
    )


# --- creating and opening -------------------------------------------------------------------


def _remove(path: str | Path) -> None:
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _tiff_metadata(spec: OutputSpec, layout: Layout, run: dict[str, Any]) -> dict[str, Any]:
    scale = spec.scale
    if spec.kind == "imagej":
        md: dict[str, Any] = {"axes": layout.stored_axes, "Info": json.dumps(jsonable(run), indent=1)}
        if spec.unit:
            md["unit"] = "um" if NGFF_UNITS.get(spec.unit) == "micrometer" else spec.unit
        if "Z" in scale:
            md["spacing"] = scale["Z"]
        if "T" in scale:
            md["finterval"] = scale["T"]
        return md
    md = {"axes": layout.stored_axes}
    for letter in "XYZ":
        if letter in scale:
            md[f"PhysicalSize{letter}"] = scale[letter]
            if spec.unit:
                md[f"PhysicalSize{letter}Unit"] = ome_unit(spec.unit)
    if "T" in scale:
        md["TimeIncrement"] = scale["T"]
    annotations = [{"Namespace": RUN_NAMESPACE, "Value": {k: encode_map_value(v) for k, v in run.items()}}]
    if not layout.is_identity:
        record = layout.record()
        annotations.insert(
            0, {"Namespace": LAYOUT_NAMESPACE, "Value": {k: encode_map_value(v) for k, v in record.items()}}
        )
    md["MapAnnotation"] = annotations
    return md


def _create_tiff(spec: OutputSpec) -> None:
    layout = Layout.from_record(spec.layout)
    dtype = np.dtype(spec.dtype)
    resolution = None
    if "X" in spec.scale and "Y" in spec.scale:
        resolution = (1.0 / spec.scale["X"], 1.0 / spec.scale["Y"])
    options: dict[str, Any] = {"imagej": True} if spec.kind == "imagej" else {"ome": True}
    stored_shape = layout.stored_shape
    photometric = "rgb" if layout.stored_axes.endswith("S") else "minisblack"
    nbytes = prod(stored_shape) * dtype.itemsize
    result = tifffile.imwrite(
        spec.partial,
        shape=stored_shape,
        dtype=dtype,
        photometric=photometric,
        resolution=resolution,
        metadata=_tiff_metadata(spec, layout, _PENDING),
        returnoffset=True,
        bigtiff=nbytes > 2**32 - 2**25,
        **options,
    )
    if result is None:  # pragma: no cover - uncompressed data written by tifffile is always contiguous
        raise OSError(f"{spec.partial}: tifffile did not write contiguous pixels")
    spec.offset = int(result[0])
    _reserve(spec.partial)


def _reserve(path: str) -> None:
    """Allocate the blocks of the whole file, which tifffile leaves as a hole where the pixels go.

    Without this a full disk shows up only when a plane is written into the
    hole; through a memory map that is a SIGBUS. Where the file system
    cannot allocate ahead (or Python has no ``posix_fallocate``), the space
    is taken plane by plane and a full disk is reported by the write.
    """
    allocate = getattr(os, "posix_fallocate", None)
    if allocate is None:  # pragma: no cover - macOS, Windows
        return
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        try:
            allocate(fd, 0, size)
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFullError(path, size) from None
            if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
    finally:
        os.close(fd)


def _ngff_axes(layout: Layout, unit: str | None) -> tuple[list[dict[str, str]], dict[str, str]]:
    axes, units = [], {}
    ngff_unit = NGFF_UNITS.get(unit or "", None)
    for letter in layout.stored_axes:
        name, kind = _NGFF_AXIS.get(letter, (letter.lower(), "space"))
        entry = {"name": name}
        if kind:
            entry["type"] = kind
        axes.append(entry)
        if letter in "ZYX" and ngff_unit:
            units[name] = ngff_unit
    return axes, units


def _create_zarr(spec: OutputSpec) -> None:
    import dask.array as da
    import zarr

    with warnings.catch_warnings():  # ome-zarr deprecates its own Scaler at import time
        warnings.simplefilter("ignore", DeprecationWarning)
        from ome_zarr.format import FormatV04
        from ome_zarr.writer import write_image

    layout = Layout.from_record(spec.layout)
    shape = layout.stored_shape
    # One chunk per plane of ours: a whole folded channel group holds one plane's colour samples.
    members = layout.members()
    chunks = []
    for letter, group, n in zip(layout.stored_axes, members, shape):
        if letter in "YX":
            chunks.append(n)
        elif letter == "C" and layout.axes[group[-1]] == "S":
            chunks.append(layout.shape[group[-1]])
        else:
            chunks.append(1)
    axes, units = _ngff_axes(layout, spec.unit)
    scale = {}
    for letter, entry in zip(layout.stored_axes, axes):
        scale[entry["name"]] = float(spec.scale.get(letter, 1.0)) if letter in "TZYX" else 1.0
    if "T" in spec.scale and "T" in layout.stored_axes:
        units["t"] = "second"
    group = zarr.open_group(spec.partial, mode="w", zarr_format=2)
    zeros = da.zeros(shape, dtype=np.dtype(spec.dtype), chunks=tuple(chunks))
    write_image(
        zeros,
        group,
        scale_factors=[],
        fmt=FormatV04(),
        axes=axes,
        scale=scale,
        axes_units=units or None,
        storage_options={"chunks": tuple(chunks)},
        compute=False,  # creates the array; the engine writes the planes
        name=Path(spec.path).name,
    )
    group.attrs[ZARR_ATTRIBUTE] = {"layout": layout.record(), "run": _PENDING}
    spec.dataset = group.attrs["multiscales"][0]["datasets"][0]["path"]


def create(spec: OutputSpec) -> OutputSpec:
    """Create the output under its temporary name (replacing any stale one); fills ``offset``/``dataset``."""
    _remove(spec.partial)
    try:
        if spec.kind == "ngff":
            _create_zarr(spec)
        else:
            _create_tiff(spec)
    except BaseException as exc:
        _remove(spec.partial)
        if is_disk_full(exc) and not isinstance(exc, DiskFullError):
            raise DiskFullError(spec.partial) from None
        raise
    fsync_directory(Path(spec.partial).parent)
    return spec


def _contiguous_region(key: Any, shape: tuple[int, ...]) -> tuple[int, int, tuple[int, ...]] | None:
    """First element and element count of the C-order region ``key`` selects, and its shape; None if scattered.

    A region is contiguous when the key is ints, then at most one slice of
    step 1, then full slices (a plane's key always is).
    """
    try:
        items = full_key(key, len(shape))
    except IndexError:
        return None
    start: list[int] = []
    region: list[int] = []
    for k, n in zip(items, shape):
        if isinstance(k, int):
            if region or not -n <= k < n:
                return None
            start.append(k % n)
            continue
        first, stop, step = k.indices(n)
        if step != 1 or stop < first or (region and (first, stop) != (0, n)):
            return None
        start.append(first)
        region.append(stop - first)
    count = prod(region)
    first_element = int(np.ravel_multi_index(start, shape)) if count else 0
    return first_element, count, tuple(region)


class _TiffPixels(MappedArray):
    """An output TIFF's pixels: reads through a memory map, writes with ``pwrite`` then ``fsync``.

    A write that finds the disk full raises :class:`DiskFullError` (a write
    through a memory map would kill the process with SIGBUS).
    """

    def __setitem__(self, key: Any, value: Any) -> None:
        region = _contiguous_region(key, self.shape) if hasattr(os, "pwrite") else None
        if region is None:  # pragma: no cover - the engine writes whole planes
            super().__setitem__(key, value)
            return
        first, _, shape = region
        data = np.ascontiguousarray(np.broadcast_to(np.asarray(value).astype(self.file_dtype, copy=False), shape))
        view = memoryview(data).cast("B")
        position = self.offset + first * self.file_dtype.itemsize
        try:
            fd = os.open(self.path, os.O_WRONLY)
            try:
                while view:
                    written = os.pwrite(fd, view, position)
                    view, position = view[written:], position + written
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFullError(self.path) from None
            raise


class _SyncedZarr:
    """A zarr array whose writes are on disk (chunk files fsync'ed) when ``[] =`` returns."""

    def __init__(self, array: Any, root: str) -> None:
        self.array = array
        self.root = root
        self.shape = tuple(array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.array[key])

    def __setitem__(self, key: Any, value: Any) -> None:
        key = tuple(full_key(key, self.ndim))
        self.array[key] = value
        try:
            paths = self._chunk_files(key)
        except Exception:  # an unexpected key or zarr version: sync everything instead
            os.sync()
            return
        for path in paths:
            if os.path.exists(path):
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def _chunk_files(self, key: Any) -> list[str]:
        keys = key
        ranges = []
        for k, n, c in zip(keys, self.shape, self.array.chunks):
            if isinstance(k, slice):
                start, stop, _ = k.indices(n)
                ranges.append(range(start // c, max(start // c + 1, -(-stop // c))))
            else:
                ranges.append(range(int(k) // c, int(k) // c + 1))
        ranges += [range(-(-n // c)) for n, c in zip(self.shape[len(keys) :], self.array.chunks[len(keys) :])]
        encode = self.array.metadata.encode_chunk_key
        return [os.path.join(self.root, self.array.path, encode(coords)) for coords in itertools.product(*ranges)]


def open_array(spec: OutputSpec) -> Any:
    """The output (temporary name) as a writable array of the engine's shape and axes.

    Integer outputs take float planes rounded and clipped (:class:`~napari_mpid.files.arrays.CastingArray`).
    """
    layout = Layout.from_record(spec.layout)
    dtype = np.dtype(spec.dtype)
    if spec.kind == "ngff":
        import zarr

        group = zarr.open_group(spec.partial, mode="r+")
        base: Any = _SyncedZarr(group[spec.dataset], spec.partial)
    else:
        base = _TiffPixels(spec.partial, spec.offset, layout.stored_shape, dtype, writable=True)
    array: Any = base if layout.is_identity else LayoutArray(base, layout)
    return CastingArray(array) if dtype.kind in "ui" else array


# --- metadata, commit ----------------------------------------------------------------------


def finalize(spec: OutputSpec, run: dict[str, Any]) -> None:
    """Store the run's metadata in the (temporary) output; safe to repeat.

    Raises
    ------
    DiskFullError
        No space for the metadata (the file is left as it was: repeat once space is freed).
    """
    try:
        _finalize(spec, jsonable(dict(run)))
    except OSError as exc:
        if is_disk_full(exc) and not isinstance(exc, DiskFullError):
            raise DiskFullError(spec.partial) from None
        raise


def _finalize(spec: OutputSpec, run: dict[str, Any]) -> None:
    if spec.kind == "ngff":
        import zarr

        group = zarr.open_group(spec.partial, mode="r+")
        record = dict(group.attrs.get(ZARR_ATTRIBUTE) or {})
        record["run"] = run
        group.attrs[ZARR_ATTRIBUTE] = record
        return

    with tifffile.TiffFile(spec.partial, mode="r+") as tif:
        page = tif.pages.first
        if spec.kind == "imagej":
            tags = tifffile.tifffile.imagej_metadata_tag({"Info": json.dumps(run, indent=1)}, tif.byteorder)
            for code, _dtype, _count, value, _ in tags:
                page.tags[code].overwrite(value)
        else:
            xml = tif.ome_metadata or ""
            pattern = re.compile(
                r'(<MapAnnotation[^>]*Namespace="' + re.escape(RUN_NAMESPACE) + r'"[^>]*>\s*<Value>).*?(</Value>)',
                re.S,
            )
            new, count = pattern.subn(lambda m: m.group(1) + map_annotation_xml(run) + m.group(2), xml, count=1)
            if count != 1:
                raise OSError(f"{spec.partial}: its OME-XML has no {RUN_NAMESPACE} annotation to fill")
            page.tags[270].overwrite(new.encode("utf-8"))
        fh = tif.filehandle
        fh.flush()
        os.fsync(fh.fileno())


def commit(specs: list[OutputSpec]) -> None:
    """Rename every output from its temporary to its final name: all of them, or (on failure) none.

    An existing final output is replaced; a final name already renamed when a
    later rename fails is moved back (and a replaced output restored).
    """
    done: list[tuple[OutputSpec, Path | None]] = []
    try:
        for spec in specs:
            final, partial = Path(spec.path), Path(spec.partial)
            aside = None
            if final.is_dir() and not final.is_symlink():  # os.replace cannot replace a directory
                aside = final.with_name(f"{final.name}.replaced-{os.getpid()}")
                _remove(aside)
                os.replace(final, aside)
            try:
                os.replace(partial, final)
            except BaseException:
                if aside is not None:
                    os.replace(aside, final)
                raise
            done.append((spec, aside))
    except BaseException:
        for spec, aside in reversed(done):
            try:
                os.replace(spec.path, spec.partial)
                if aside is not None:
                    os.replace(aside, spec.path)
            except OSError:
                pass
        raise
    for spec, aside in done:
        if aside is not None:
            _remove(aside)
        fsync_directory(Path(spec.path).parent)


def discard(specs: list[OutputSpec]) -> None:
    """Remove the temporary files of these outputs (the final ones are never touched)."""
    for spec in specs:
        try:
            _remove(spec.partial)
        except OSError:
            pass


def write_array(
    path: str | Path,
    data: Any,
    axes: str,
    scale: dict[str, float] | None = None,
    unit: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write a whole array (TIFF or OME-Zarr by suffix) atomically: temporary name, then renamed."""
    data = np.asarray(data)
    spec = plan_output(path, data.shape, axes, data.dtype, scale, unit)
    create(spec)
    try:
        target = open_array(spec)
        target[...] = data
        finalize(spec, metadata or {})
        commit([spec])
    except BaseException:
        discard([spec])
        raise


def write_tiff(
    path: str | Path,
    data: Any,
    axes: str,
    scale: dict[str, float] | None = None,
    unit: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write ``data`` as a TIFF keeping axes, pixel size and run metadata.

    ImageJ hyperstacks allow the axes TZCYXS in that order and uint8, uint16
    or float32; anything else is written as OME-TIFF, with plane axes folded
    into one where OME cannot hold them (e.g. two Q axes), which
    :func:`napari_mpid.files.read.read_image` undoes. ``metadata`` is stored
    as JSON (ImageJ "Info") or as an OME MapAnnotation. The file is written
    under a temporary name and renamed at the end, so a failure never leaves
    a partial output.

    Parameters
    ----------
    path : str or Path
        The file, ending in ``.tif`` or ``.tiff``.
    data : array-like
        The pixels, one dimension per letter of ``axes``.
    axes : str
        Our axis letters (T, Z, C, Q, Y, X, S).
    scale : dict, optional
        Physical size per axis letter.
    unit : str, optional
        Unit of ``scale`` (e.g. ``"µm"``).
    metadata : dict, optional
        The run to store in the file.
    """
    write_array(path, data, axes, scale, unit, metadata)


def write_ome_zarr(
    path: str | Path,
    data: Any,
    axes: str,
    scale: dict[str, float] | None = None,
    unit: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write ``data`` as OME-Zarr (OME-NGFF 0.4 via ome-zarr-py), one chunk per plane.

    Parameters
    ----------
    path : str or Path
        The store, ending in ``.ome.zarr``.
    data, axes, scale, unit, metadata
        As for :func:`write_tiff`.

    Raises
    ------
    MissingExtraError
        ome-zarr-py is not installed.
    """
    write_array(path, data, axes, scale, unit, metadata)
