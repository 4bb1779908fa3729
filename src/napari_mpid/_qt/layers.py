"""Between napari layers and the engine: guessing axes, writing result layers.

Runs on the main thread only (called from the widget and from worker
``returned``/``yielded`` callbacks); nothing here computes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.engine import AXIS_LETTERS, DenoiseResult, InputError, resolve_axes

__all__ = ["guess_axes", "layer_geometry", "noise_limits", "publish", "result_names"]

# napari axis labels (lower-cased) that name one of our axis letters.
_LABEL_ALIASES = {
    "t": "T",
    "time": "T",
    "frame": "T",
    "z": "Z",
    "depth": "Z",
    "slice": "Z",
    "plane": "Z",
    "c": "C",
    "channel": "C",
    "ch": "C",
    "y": "Y",
    "row": "Y",
    "x": "X",
    "col": "X",
    "column": "X",
    "s": "S",
    "q": "Q",
}


def guess_axes(layer: Any) -> str:
    """Axes letters for an Image layer's data from its axis_labels and rgb flag.

    Known labels ("z", "time", "channel", "y", ...) give their letter, others
    "Q" (a plane axis); an RGB layer gets a trailing "S". Falls back to the
    engine's guess (:func:`~napari_mpid.core.engine.resolve_axes`) when the
    labels do not name both Y and X.
    """
    shape = tuple(np.shape(layer.data))
    rgb = bool(getattr(layer, "rgb", False))
    labels = [str(label).strip().lower() for label in getattr(layer, "axis_labels", ())]
    letters = "".join(_LABEL_ALIASES.get(label, "Q") for label in labels) + ("S" if rgb else "")
    try:
        return resolve_axes(shape, letters)
    except InputError:
        return resolve_axes(shape, None, rgb)


def result_names(input_name: str) -> tuple[str, str]:
    """Names of the denoised and noise-map layers of an input layer."""
    return f"{input_name} denoised", f"{input_name} noise map"


def layer_geometry(layer: Any) -> dict[str, Any]:
    """Keyword arguments that place a new layer exactly over ``layer``."""
    geometry: dict[str, Any] = {
        "scale": tuple(layer.scale),
        "translate": tuple(layer.translate),
        "axis_labels": tuple(layer.axis_labels),
    }
    units = getattr(layer, "units", None)  # napari >= 0.6
    if units is not None:
        geometry["units"] = tuple(units)
    return geometry


def noise_limits(noise_map: np.ndarray) -> tuple[float, float]:
    """Contrast limits symmetric around 0 covering 99.9 % of the noise."""
    bound = float(np.percentile(np.abs(noise_map), 99.9)) if noise_map.size else 0.0
    if not np.isfinite(bound) or bound <= 0:
        bound = 1.0
    return -bound, bound


def _set_or_add(viewer: Any, name: str, data: np.ndarray, kwargs: dict[str, Any]) -> Any:
    """Replace the data and properties of layer ``name``, or add it if absent.

    A layer whose rgb flag or dimensionality no longer matches is removed and
    added again at the same position.
    """
    limits = kwargs.pop("contrast_limits")
    existing = viewer.layers[name] if name in viewer.layers else None
    if existing is not None and (existing.rgb != kwargs["rgb"] or existing.data.ndim != data.ndim):
        index = viewer.layers.index(existing)
        viewer.layers.remove(existing)
        layer = viewer.add_image(data, name=name, contrast_limits=limits, **kwargs)
        viewer.layers.move(viewer.layers.index(layer), index)
        return layer
    if existing is None:
        return viewer.add_image(data, name=name, contrast_limits=limits, **kwargs)
    existing.data = data
    for key in ("scale", "translate", "axis_labels", "units", "metadata", "colormap"):
        if key in kwargs:
            setattr(existing, key, kwargs[key])
    existing.contrast_limits_range = (min(limits[0], float(data.min())), max(limits[1], float(data.max())))
    existing.contrast_limits = limits
    return existing


def publish(viewer: Any, source: Any, result: DenoiseResult) -> tuple[Any, Any]:
    """Show a run's result as "<input> denoised" and "<input> noise map" layers.

    Both take the input layer's geometry (scale, translate, units, axis
    labels) and rgb flag, and record every parameter of the run in their
    metadata. Existing layers of these names are updated in place, so running
    again does not add copies.
    """
    denoised_name, noise_name = result_names(source.name)
    meta = {**result.metadata(), "source_layer": source.name}
    common = {**layer_geometry(source), "rgb": bool(source.rgb)}
    limits = tuple(float(v) for v in source.contrast_limits)
    denoised = _set_or_add(
        viewer,
        denoised_name,
        result.denoised,
        {
            **common,
            "contrast_limits": limits,
            "colormap": source.colormap.name if not source.rgb else "gray",
            "metadata": {**meta, "layer": "denoised"},
        },
    )
    # RGB noise maps keep their colour axis: with limits symmetric around 0, grey means no noise.
    noise = _set_or_add(
        viewer,
        noise_name,
        result.noise_map,
        {
            **common,
            "contrast_limits": noise_limits(result.noise_map),
            "colormap": "gray",
            "metadata": {**meta, "layer": "noise map"},
            "visible": False,
        },
    )
    return denoised, noise


def axes_help() -> str:
    """Tooltip of the axes field."""
    return (
        f"One letter per dimension of the layer's data, from {AXIS_LETTERS}: T time, Z depth, "
        "C channel (each filled separately, with its own intensity scale), Y and X the plane, "
        "S colour samples of an RGB image (filled together), Q any other plane axis. "
        "Guessed from the layer's axis labels and RGB flag."
    )
