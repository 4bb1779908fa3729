"""napari writer: an Image layer to an ImageJ/OME TIFF with its axes, pixel size and metadata."""

from __future__ import annotations

from typing import Any

import numpy as np

from .io import write_tiff

__all__ = ["write_image"]

_LETTERS = {"t": "T", "time": "T", "z": "Z", "c": "C", "channel": "C", "y": "Y", "x": "X"}


def _axes(data: np.ndarray, meta: dict[str, Any]) -> str:
    labels = [str(label).lower() for label in meta.get("axis_labels", ())]
    letters = [_LETTERS.get(label, "Q") for label in labels]
    if meta.get("rgb"):
        letters.append("S")
    axes = "".join(letters)
    if len(axes) != data.ndim or "Y" not in axes or "X" not in axes or any(axes.count(a) > 1 for a in "TZCYXS"):
        axes = "Q" * (data.ndim - (3 if meta.get("rgb") else 2)) + ("YXS" if meta.get("rgb") else "YX")
    return axes


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one Image layer; float64 is stored as float32 (the TIFF readers' common ground)."""
    array = np.asarray(data)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    axes = _axes(array, meta)
    scale = dict(zip(axes, (float(s) for s in meta.get("scale", ()))))
    units = meta.get("units") or ()
    unit = next((str(u) for u in units if str(u) not in ("pixel", "")), None)
    metadata = {k: v for k, v in (meta.get("metadata") or {}).items() if isinstance(v, (str, int, float))}
    write_tiff(path, array, axes, {k: v for k, v in scale.items() if k in "ZYXT"}, unit, metadata or None)
    return [path]
