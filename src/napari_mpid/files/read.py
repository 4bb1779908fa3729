"""Reading images with their axes and pixel size, lazily where the format allows (no torch, no Qt).

TIFF goes through tifffile, which understands ImageJ hyperstacks and
OME-TIFF: the axes string (e.g. ``"ZYX"``, ``"TCZYX"``) and the physical pixel
size are kept so that the outputs line up with the input. OME-Zarr goes
through ome-zarr-py (``pip install "napari-mpid[ome-zarr]"``). PNG/JPEG go
through Pillow. Other formats (CZI, ND2, LIF...) are read with bioio, or
aicsimageio as a fallback, when one of them is installed.

:func:`open_image` reads lazily: an uncompressed TIFF is read one plane at a
time straight from the file, a compressed one through tifffile's zarr store,
OME-Zarr and bioio through their own lazy arrays. :func:`read_image` returns
the same image as a numpy array. Axis letters are mapped to ours by
:func:`napari_mpid.core.run.axes.normalize_axes` (tifffile's I, E, A, P, R, H, ...
become Q).

Files written by napari-mpid carry the run's metadata (read back into
:attr:`ImageData.metadata`, see :mod:`napari_mpid.files.metadata`) and, where
the format could not hold our axes as they are, a record of how they were
stored (see :mod:`napari_mpid.files.arrays`), so that they read back with the
shape and axes they were written with.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..core.run.axes import default_axes, normalize_axes
from ..core.run.normalization import fit_scale
from .arrays import Layout, LayoutArray, MappedArray
from .formats import PLAIN_SUFFIXES, TIFF_SUFFIXES, MissingExtraError, is_zarr_path, require_ome_zarr
from .metadata import (
    LAYOUT_NAMESPACE,
    RUN_NAMESPACE,
    SHORT_UNITS,
    ZARR_ATTRIBUTE,
    imagej_scale,
    info_metadata,
    ome_annotations,
    ome_scale,
)

__all__ = ["ImageData", "ImageReadError", "open_image", "read_image", "read_training_image"]


class ImageReadError(ValueError):
    """The file cannot be read as an image."""


@dataclass
class ImageData:
    """An image array with the metadata that must survive denoising.

    Attributes
    ----------
    data : array-like
        The pixels, in file order: a numpy array from :func:`read_image`, a
        lazy array-like (shape, dtype, ``[]``) from :func:`open_image`.
    axes : str
        One letter per dimension of ``data``: T, Z, C, Y, X, S (RGB samples),
        or Q (any other plane axis).
    scale : dict
        Physical size per axis letter (e.g. ``{"Z": 0.5, "Y": 0.1, "X": 0.1}``).
    unit : str or None
        Unit of ``scale`` (e.g. ``"µm"``).
    source : str
        The file it was read from.
    metadata : dict
        The napari-mpid run that wrote the file (empty for other files).
    """

    data: Any
    axes: str
    scale: dict[str, float] = field(default_factory=dict)
    unit: str | None = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of :attr:`data`."""
        return tuple(int(n) for n in self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        """Data type of :attr:`data`."""
        return np.dtype(self.data.dtype)

    def close(self) -> None:
        """Release the files a lazy image keeps open (reading afterwards is not possible)."""
        while self.closers:
            self.closers.pop()()


# --- TIFF ----------------------------------------------------------------------------------


#: tifffile's warnings that mean the file's structure is broken (an IFD or tag list past its end).
_DAMAGE_WARNINGS = re.compile(
    r"invalid (page )?offset to (first )?page|invalid page offset|invalid next page|corrupted tag"
)


def _bytes_text(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


class _TiffWarnings(logging.Handler):
    """Collects tifffile's warnings while a file is opened (instead of printing them on stderr)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _damaged(path: Path, why: str) -> ImageReadError:
    return ImageReadError(f"{path.name}: the file is truncated or damaged ({why})")


def _check_extent(path: Path, series: Any, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse a TIFF whose header places pixels past the end of the file (a truncated copy, a failed download)."""
    size = path.stat().st_size
    offset = series.dataoffset
    if offset is not None:
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if offset + nbytes > size:
            dims = "x".join(str(n) for n in shape)
            raise _damaged(
                path,
                f"its header declares {dims} {dtype} pixels, {_bytes_text(nbytes)}, but the file holds "
                f"{_bytes_text(size)}",
            )
        return
    # Compressed or scattered: the first and last planes' data must lie in their file
    # (an OME series may span several files).
    pages = series.pages
    for page in (pages[0], pages[-1]) if len(pages) else ():
        if page is None:
            continue
        handle = getattr(getattr(page, "parent", None), "filehandle", None)
        limit = int(handle.size) if handle is not None else size
        where = "" if handle is None or Path(handle.path).name == path.name else f" {Path(handle.path).name}"
        ends = [int(o) + int(n) for o, n in zip(page.dataoffsets, page.databytecounts) if n]
        if ends and max(ends) > limit:
            raise _damaged(
                path, f"its pixel data run to byte {max(ends)} but the file{where} holds {_bytes_text(limit)}"
            )


def _open_tiff(path: Path) -> ImageData:
    logger = logging.getLogger("tifffile")
    collected = _TiffWarnings()
    logger.addHandler(collected)
    try:
        image = _open_tiff_checked(path)
    finally:
        logger.removeHandler(collected)
    broken = [m for m in collected.messages if _DAMAGE_WARNINGS.search(m)]
    if broken:
        image.close()
        raise _damaged(path, "tifffile: " + broken[0].split("> ", 1)[-1])
    return image


def _open_tiff_checked(path: Path) -> ImageData:
    tif = tifffile.TiffFile(path)
    try:
        series = tif.series[0]
        stored_axes = series.axes.upper()
        shape = tuple(int(n) for n in series.shape)
        dtype = np.dtype(series.dtype)
        metadata: dict[str, Any] = {}
        layout = None
        if tif.is_ome:
            xml = tif.ome_metadata or ""
            scale, unit = ome_scale(xml)
            notes = ome_annotations(xml)
            metadata = notes.get(RUN_NAMESPACE, {})
            if LAYOUT_NAMESPACE in notes:
                layout = Layout.from_record(notes[LAYOUT_NAMESPACE])
        else:
            scale, unit = imagej_scale(tif, normalize_axes(stored_axes))
            info = (tif.imagej_metadata or {}).get("Info")
            if isinstance(info, str) and info.strip():
                metadata = info_metadata(info)
        _check_extent(path, series, shape, dtype)
        offset = series.dataoffset
        closers: list[Callable[[], None]] = []
        if offset is not None:
            base: Any = MappedArray(path, offset, shape, np.dtype(tif.byteorder + dtype.char), writable=False)
            tif.close()
        else:
            base = _tiff_zarr(tif, series)
            closers.append(tif.close)
    except Exception:
        tif.close()
        raise
    if layout is not None and layout.stored_shape == shape:
        data: Any = LayoutArray(base, layout)
        axes = layout.axes
    else:
        data, axes = base, normalize_axes(stored_axes)
    return ImageData(data, axes, scale, unit, str(path), metadata, closers)


def _tiff_zarr(tif: Any, series: Any) -> Any:
    """A compressed or scattered TIFF series as a lazy zarr array (tifffile's zarr store)."""
    try:
        import zarr
    except ImportError:  # read it whole: correct, only not lazy
        return series.asarray()
    node = zarr.open(series.aszarr(), mode="r")
    return node if hasattr(node, "shape") else node["0"]


# --- OME-Zarr ------------------------------------------------------------------------------


def _letter_of(axis: Any) -> str:
    if isinstance(axis, str):
        name, kind = axis, ""
    else:
        name, kind = str(axis.get("name", "")), str(axis.get("type", "") or "")
    name = name.lower()
    if name in ("t", "z", "c", "y", "x"):
        return name.upper()
    return {"time": "T", "channel": "C"}.get(kind, "Q")


def _open_zarr(path: Path) -> ImageData:
    require_ome_zarr()
    import zarr

    with warnings.catch_warnings():  # ome-zarr deprecates its own Scaler at import time
        warnings.simplefilter("ignore", DeprecationWarning)
        from ome_zarr.io import parse_url
        from ome_zarr.reader import Multiscales, Reader

    logging.getLogger("ome_zarr").setLevel(logging.ERROR)  # "version mismatch" chatter on stderr
    node = zarr.open(str(path), mode="r")
    if hasattr(node, "shape"):  # a plain Zarr array: axes from its shape
        return ImageData(node, default_axes(node.shape), {}, None, str(path))
    location = parse_url(str(path), mode="r")
    if location is None:
        raise ImageReadError(f"{path.name}: not an OME-Zarr image")
    image = next((n for n in Reader(location)() if any(isinstance(s, Multiscales) for s in n.specs)), None)
    if image is None:
        raise ImageReadError(f"{path.name}: a Zarr group without OME-NGFF multiscales (no image in it)")
    spec = next(s for s in image.specs if isinstance(s, Multiscales))
    array = node[spec.datasets[0]]
    axes_meta = image.metadata.get("axes") or [{"name": n} for n in "tczyx"[-array.ndim :]]
    stored_axes = "".join(_letter_of(a) for a in axes_meta)
    scale_values: list[float] = []
    for transform in (image.metadata.get("coordinateTransformations") or [[]])[0]:
        if transform.get("type") == "scale":
            scale_values = [float(v) for v in transform["scale"]]
    scale, unit = {}, None
    for letter, axis, value in zip(stored_axes, axes_meta, scale_values or [1.0] * len(stored_axes)):
        if letter in "TZYX" and value != 1.0:
            scale[letter] = value
        if letter in "ZYX" and isinstance(axis, dict) and axis.get("unit") and unit is None:
            unit = SHORT_UNITS.get(str(axis["unit"]), str(axis["unit"]))
    ours = dict(node.attrs.get(ZARR_ATTRIBUTE) or {})
    metadata = dict(ours.get("run") or {})
    if ours.get("layout"):
        layout = Layout.from_record(ours["layout"])
        if layout.stored_shape == tuple(array.shape):
            return ImageData(LayoutArray(array, layout), layout.axes, scale, unit, str(path), metadata)
    return ImageData(array, normalize_axes(stored_axes), scale, unit, str(path), metadata)


# --- PNG, bioio ----------------------------------------------------------------------------


def _read_plain(path: Path) -> ImageData:
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            data = np.array(im)
        elif im.mode in ("L", "P"):
            data = np.array(im.convert("L"))
        else:
            data = np.array(im.convert("RGB"))
    return ImageData(data, "YX" if data.ndim == 2 else "YXS", {}, None, str(path))


def _open_bio(path: Path) -> ImageData:
    try:
        from bioio import BioImage  # type: ignore[import-not-found]
    except ImportError:
        try:
            from aicsimageio import AICSImage as BioImage  # type: ignore[import-not-found,no-redef]
        except ImportError:
            raise ImageReadError(
                f"{path.name}: unsupported format {path.suffix!r}; TIFF, OME-Zarr, PNG and JPEG are built in, "
                "other formats need `pip install napari-mpid[bioio]`"
            ) from None
    img = BioImage(path)
    data = img.dask_data if hasattr(img, "dask_data") else img.data  # always TCZYX, lazy with dask
    sizes = img.physical_pixel_sizes
    scale = {k: float(v) for k, v in zip("ZYX", (sizes.Z, sizes.Y, sizes.X)) if v}
    axes = "TCZYX"
    # Drop singleton T/C/Z to keep the output shape natural.
    key = tuple(slice(None) if a in "YX" or n > 1 else 0 for a, n in zip(axes, data.shape))
    data = data[key]
    kept = "".join(a for a, k in zip(axes, key) if not isinstance(k, int))
    return ImageData(data, kept, scale, "µm" if scale else None, str(path))


def open_image(path: str | Path) -> ImageData:
    """Open an image file lazily, with its axes and pixel size.

    Large TIFF and OME-Zarr stacks are not read here: ``data`` reads the
    planes it is asked for. Call :meth:`ImageData.close` when done.

    Parameters
    ----------
    path : str or Path
        A TIFF, OME-Zarr store, PNG/JPEG/BMP, or a format bioio reads.

    Returns
    -------
    ImageData
        ``data`` is a lazy array-like in the file's order of axes.

    Raises
    ------
    ImageReadError
        Missing file, unreadable content, unsupported format or empty image.
    MissingExtraError
        OME-Zarr without ome-zarr-py installed.
    """
    path = Path(path)
    zarr_store = is_zarr_path(path)
    if not (path.is_dir() if zarr_store else path.is_file()):
        raise ImageReadError(f"{path}: no such {'Zarr store' if zarr_store else 'file'}")
    suffix = path.suffix.lower()
    try:
        if zarr_store:
            image = _open_zarr(path)
        elif suffix in TIFF_SUFFIXES:
            image = _open_tiff(path)
        elif suffix in PLAIN_SUFFIXES:
            image = _read_plain(path)
        else:
            image = _open_bio(path)
    except (ImageReadError, MissingExtraError):
        raise
    except Exception as exc:  # tifffile/PIL/zarr raise many kinds of errors on bad files
        raise ImageReadError(f"{path.name}: cannot read image ({type(exc).__name__}: {exc})") from None
    if int(np.prod(image.shape, dtype=np.int64)) == 0:
        image.close()
        raise ImageReadError(f"{path.name}: the image is empty (shape {image.shape})")
    return image


def read_image(path: str | Path) -> ImageData:
    """Read an image file with its axes and pixel size into memory.

    Parameters
    ----------
    path : str or Path
        Any file :func:`open_image` opens.

    Returns
    -------
    ImageData
        ``data`` is a numpy array in native byte order.

    Raises
    ------
    ImageReadError
        Missing file, unreadable content, unsupported format or empty image.
    """
    image = open_image(path)
    try:
        image.data = np.asarray(image.data)
        if not image.data.dtype.isnative:
            image.data = image.data.astype(image.data.dtype.newbyteorder("="))
    except Exception as exc:
        raise ImageReadError(f"{Path(path).name}: cannot read image ({type(exc).__name__}: {exc})") from None
    finally:
        image.close()
    return image


def read_training_image(path: str | Path) -> np.ndarray:
    """A 2D gray or RGB image as float32 in [0, 1] for pre-training.

    8-bit images are divided by 255 (as the paper does); other integer and
    float images are scaled with the "percentile" policy used at inference,
    so a model trained on a user's 16-bit data sees the same intensity range
    it will see when denoising. Stacks yield their first plane only; use
    :func:`read_image` for more.

    Parameters
    ----------
    path : str or Path
        An image file :func:`read_image` reads.

    Returns
    -------
    ndarray
        float32, shape (H, W) or (H, W, 3), values in [0, 1].
    """
    image = read_image(path)
    data = image.data
    axes = image.axes
    while data.ndim > (3 if "S" in axes else 2):
        data = data[0]
        axes = axes[1:]
    if data.dtype == np.uint8:
        out = data.astype(np.float32) / 255.0
    else:
        out = np.clip(fit_scale(data, "percentile").forward(data), 0.0, 1.0)
    return out
