"""napari reader: TIFF (ImageJ, OME) and, with bioio installed, other formats.

Goes through :func:`napari_mpid.files.read.read_image`, so a file opens in napari
with the same axes and pixel size that the CLI sees. Never imports torch:
opening a file must not pay for the deep-learning stack.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .core.run.axes import labels_for_axes
from .files.formats import BIO_SUFFIXES, TIFF_SUFFIXES
from .files.read import ImageData, read_image

__all__ = ["BIO_SUFFIXES", "image_layer_kwargs", "napari_get_reader", "read_files"]

_UNITS = {
    "µm": "micrometer",
    "\\u00B5m": "micrometer",
    "um": "micrometer",
    "micron": "micrometer",
    "nm": "nanometer",
    "mm": "millimeter",
}

LayerData = tuple[Any, dict[str, Any], str]


def _bio_available() -> bool:
    return any(importlib.util.find_spec(name) is not None for name in ("bioio", "aicsimageio"))


def _handles(path: str | Path) -> bool:
    suffix = Path(path).suffix.lower()
    return suffix in TIFF_SUFFIXES or (suffix in BIO_SUFFIXES and _bio_available())


def napari_get_reader(path: str | Sequence[str]) -> Callable[[Any], list[LayerData]] | None:
    """Return :func:`read_files` if every path is a file this plugin reads, else None."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or not all(_handles(p) for p in paths):
        return None
    return read_files


def _units_supported() -> bool:
    try:
        from importlib.metadata import version

        major, minor = (int(v) for v in version("napari").split(".")[:2])
    except Exception:  # napari not installed or an odd version string
        return False
    return (major, minor) >= (0, 6)


def image_layer_kwargs(image: ImageData, name: str) -> dict[str, Any]:
    """napari Image layer keyword arguments for an ImageData (axes, scale, units, rgb).

    A trailing colour-samples axis (S with 3 or 4 samples) becomes ``rgb=True``
    and has no scale or label of its own, as napari expects.
    """
    axes = image.axes
    rgb = axes.endswith("S") and image.data.shape[-1] in (3, 4)
    layer_axes = axes[:-1] if rgb else axes
    kwargs: dict[str, Any] = {
        "name": name,
        "rgb": rgb,
        "axis_labels": labels_for_axes(layer_axes),
        "scale": tuple(float(image.scale.get(a, 1.0)) for a in layer_axes),
        "metadata": {"axes": axes, "source": image.source, "unit": image.unit, "pixel_size": dict(image.scale)},
    }
    if image.metadata:  # the napari-mpid run that wrote the file
        kwargs["metadata"]["run"] = dict(image.metadata)
    unit = _UNITS.get(image.unit or "", image.unit)
    if unit and _units_supported():
        kwargs["units"] = tuple(unit if a in "ZYX" and a in image.scale else "pixel" for a in layer_axes)
    return kwargs


def read_files(path: str | Sequence[str]) -> list[LayerData]:
    """Read one or more files into napari layer data, one Image layer per file."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers: list[LayerData] = []
    for p in paths:
        image = read_image(p)
        layers.append((image.data, image_layer_kwargs(image, Path(p).name.split(".")[0]), "image"))
    return layers
