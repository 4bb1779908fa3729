"""napari writer: an Image layer to an ImageJ/OME TIFF with its axes, pixel size and metadata."""

from __future__ import annotations

from typing import Any

import numpy as np

from .core.errors import InputError
from .core.run.axes import axes_from_labels, resolve_axes
from .files.write import write_tiff

__all__ = ["write_image"]


def _axes(data: np.ndarray, meta: dict[str, Any]) -> str:
    """Our axes for a layer: from its axis labels (:func:`~napari_mpid.core.run.axes.axes_from_labels`).

    Labels that do not name Y and X once each (napari's defaults "0", "1",
    ... or "-4", "-3", ...) fall back to a guess from the shape: leading plane
    axes Q, then Y, X (and S for RGB layers).
    """
    rgb = bool(meta.get("rgb"))
    labels = meta.get("axis_labels") or ()
    try:
        return resolve_axes(data.shape, axes_from_labels(labels, rgb))
    except InputError:
        return resolve_axes(data.shape, None, rgb)


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Image layer; float64 is stored as float32 (the TIFF readers' common ground)."""
    array = np.asarray(data)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    axes = _axes(array, meta)
    scale = dict(zip(axes, (float(s) for s in meta.get("scale", ()))))
    units = meta.get("units") or ()
    unit = next((str(u) for u in units if str(u) not in ("pixel", "", "None")), None)
    metadata = {k: v for k, v in (meta.get("metadata") or {}).items() if isinstance(v, (str, int, float))}
    write_tiff(path, array, axes, {k: v for k, v in scale.items() if k in "ZYXT"}, unit, metadata or None)
    return [path]
