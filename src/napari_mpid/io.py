"""Reading and writing images with their axes and pixel size (no torch, no Qt).

TIFF goes through tifffile, which understands ImageJ hyperstacks and
OME-TIFF: the axes string (e.g. ``"ZYX"``, ``"TCZYX"``) and the physical pixel
size are kept so that the outputs line up with the input. PNG/JPEG go through
Pillow. Other formats (CZI, ND2, LIF...) are read with bioio, or aicsimageio
as a fallback, when one of them is installed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PLAIN_SUFFIXES", "TIFF_SUFFIXES", "ImageData", "ImageReadError", "read_image", "write_tiff"]

TIFF_SUFFIXES = (".tif", ".tiff")
PLAIN_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class ImageReadError(ValueError):
    """The file cannot be read as an image."""


@dataclass
class ImageData:
    """An image array with the metadata that must survive denoising.

    Attributes
    ----------
    data : ndarray
        The pixels, in file order.
    axes : str
        One letter per dimension of ``data``: T, Z, C, Y, X, S (RGB samples),
        or Q (unknown).
    scale : dict
        Physical size per axis letter (e.g. ``{"Z": 0.5, "Y": 0.1, "X": 0.1}``).
    unit : str or None
        Unit of ``scale`` (e.g. ``"micron"``).
    """

    data: np.ndarray
    axes: str
    scale: dict[str, float] = field(default_factory=dict)
    unit: str | None = None
    source: str = ""


def _imagej_scale(tif: Any, axes: str) -> tuple[dict[str, float], str | None]:
    scale: dict[str, float] = {}
    unit = None
    page = tif.pages.first if hasattr(tif.pages, "first") else tif.pages[0]
    tags = page.tags
    for letter, tag in (("X", "XResolution"), ("Y", "YResolution")):
        if tag in tags:
            num, den = tags[tag].value
            if num:
                size = den / num
                if size != 1.0:
                    scale[letter] = float(size)
    ij = tif.imagej_metadata or {}
    if "spacing" in ij and "Z" in axes:
        scale["Z"] = float(ij["spacing"])
    if "finterval" in ij and "T" in axes:
        scale["T"] = float(ij["finterval"])
    if ij.get("unit"):
        unit = str(ij["unit"]).replace("\\u00B5", "µ")
    return scale, unit


def _ome_scale(tif: Any) -> tuple[dict[str, float], str | None]:
    xml = tif.ome_metadata or ""
    scale: dict[str, float] = {}
    unit = None
    for letter in "XYZ":
        m = re.search(rf'PhysicalSize{letter}="([0-9.eE+-]+)"', xml)
        if m:
            scale[letter] = float(m.group(1))
    m = re.search(r'PhysicalSizeXUnit="([^"]+)"', xml)
    if m:
        unit = m.group(1)
    elif scale:
        unit = "µm"  # the OME default unit
    return scale, unit


def _read_tiff(path: Path) -> ImageData:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        data = series.asarray()
        axes = series.axes.upper()
        if tif.is_ome:
            scale, unit = _ome_scale(tif)
        else:
            scale, unit = _imagej_scale(tif, axes)
    # tifffile names unknown leading dimensions I or Q; treat them as planes.
    axes = axes.replace("I", "Q")
    return ImageData(data, axes, scale, unit, str(path))


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


def _read_bio(path: Path) -> ImageData:
    try:
        from bioio import BioImage  # type: ignore[import-not-found]
    except ImportError:
        try:
            from aicsimageio import AICSImage as BioImage  # type: ignore[import-not-found,no-redef]
        except ImportError:
            raise ImageReadError(
                f"{path.name}: unsupported format {path.suffix!r}; TIFF, PNG and JPEG are built in, "
                "other formats need `pip install napari-mpid[bioio]`"
            ) from None
    img = BioImage(path)
    data = np.asarray(img.data)  # always TCZYX
    sizes = img.physical_pixel_sizes
    scale = {k: float(v) for k, v in zip("ZYX", (sizes.Z, sizes.Y, sizes.X)) if v}
    axes = "TCZYX"
    # Drop singleton T/C/Z to keep the output shape natural.
    keep = [i for i, a in enumerate(axes) if a in "YX" or data.shape[i] > 1]
    data = data.reshape([data.shape[i] for i in keep])
    return ImageData(data, "".join(axes[i] for i in keep), scale, "µm" if scale else None, str(path))


def read_image(path: str | Path) -> ImageData:
    """Read an image file with its axes and pixel size.

    Raises
    ------
    ImageReadError
        Missing file, unreadable content, unsupported format or empty image.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in TIFF_SUFFIXES:
            image = _read_tiff(path)
        elif suffix in PLAIN_SUFFIXES:
            image = _read_plain(path)
        else:
            image = _read_bio(path)
    except ImageReadError:
        raise
    except Exception as exc:  # tifffile/PIL raise many kinds of errors on bad files
        raise ImageReadError(f"{path.name}: cannot read image ({type(exc).__name__}: {exc})") from None
    if image.data.size == 0:
        raise ImageReadError(f"{path.name}: the image is empty (shape {image.data.shape})")
    return image


def write_tiff(
    path: str | Path,
    data: np.ndarray,
    axes: str,
    scale: dict[str, float] | None = None,
    unit: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write ``data`` as an ImageJ-compatible TIFF keeping axes and pixel size.

    ImageJ hyperstacks allow the axes TZCYXS in that order; other orders (or
    float64, or unknown axes) are written as OME-TIFF, which keeps any axes
    order and the physical sizes. The file is written to a temporary name and
    renamed at the end, so a failure never leaves a partial output.
    """
    import tifffile

    path = Path(path)
    scale = scale or {}
    tmp = path.with_name(path.name + ".partial")
    try:
        imagej_order = "TZCYXS"
        positions = [imagej_order.find(a) for a in axes]
        imagej_ok = (
            -1 not in positions and positions == sorted(positions) and data.dtype in (np.uint8, np.uint16, np.float32)
        )
        resolution = None
        if "X" in scale and "Y" in scale:
            resolution = (1.0 / scale["X"], 1.0 / scale["Y"])
        if imagej_ok:
            md: dict[str, Any] = {"axes": axes}
            if unit:
                md["unit"] = "um" if unit in ("µm", "micron", "um") else unit
            if "Z" in scale:
                md["spacing"] = scale["Z"]
            if "T" in scale:
                md["finterval"] = scale["T"]
            if metadata:
                md["Info"] = "\n".join(f"{k} = {v}" for k, v in metadata.items())
            tifffile.imwrite(tmp, data, imagej=True, resolution=resolution, metadata=md)
        else:
            md = {"axes": axes}
            for letter in "XYZ":
                if letter in scale:
                    md[f"PhysicalSize{letter}"] = scale[letter]
                    if unit:
                        md[f"PhysicalSize{letter}Unit"] = "µm" if unit in ("micron", "um") else unit
            tifffile.imwrite(tmp, data, ome=True, metadata=md, resolution=resolution)
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_training_image(path: str | Path) -> np.ndarray:
    """A 2D gray or RGB image as float32 in [0, 1] for pre-training.

    8-bit images are divided by 255 (as the paper does); other integer and
    float images are scaled with the "percentile" policy used at inference,
    so a model trained on a user's 16-bit data sees the same intensity range
    it will see when denoising. Stacks yield their first plane only; use
    :func:`read_image` for more.
    """
    from .core.normalization import fit_scale

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
