"""Between napari layers and the engine: guessing axes, writing result layers.

Runs on the main thread only (called from the widget and from worker
``returned``/``yielded`` callbacks); nothing here computes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_mpid._qt.stores import PlaneStore, pyramid
from napari_mpid.api import AXIS_LETTERS, DenoiseResult, InputError, axes_from_labels, resolve_axes

__all__ = [
    "first_sentence",
    "full_resolution",
    "guess_axes",
    "layer_geometry",
    "noise_limits",
    "publish",
    "result_names",
    "result_summary",
]


def full_resolution(layer: Any) -> Any:
    """An Image layer's data, or the highest resolution level of a multiscale layer (never copied)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def guess_axes(layer: Any) -> str:
    """Axes letters for an Image layer's data from its axis_labels and rgb flag.

    The labels are mapped by :func:`~napari_mpid.core.run.axes.axes_from_labels`
    (the one map shared with the reader and writer: "z", "time", "channel",
    "y", ... give their letter, others "Q", a plane axis); an RGB layer gets
    a trailing "S". Falls back to a guess from the shape
    (:func:`~napari_mpid.core.run.axes.resolve_axes`) when the labels do not
    name both Y and X.
    """
    shape = tuple(np.shape(full_resolution(layer)))
    rgb = bool(getattr(layer, "rgb", False))
    letters = axes_from_labels(getattr(layer, "axis_labels", ()), rgb)
    try:
        return resolve_axes(shape, letters)
    except InputError:
        return resolve_axes(shape, None, rgb)


def result_names(input_name: str) -> tuple[str, str]:
    """Names of the denoised and noise-map layers of an input layer."""
    return f"{input_name} denoised", f"{input_name} noise map"


def result_summary(result: DenoiseResult) -> str:
    """What a run did, in plain words: the result's own summary, or planes, time and device.

    Results of engines without ``summary()`` get the short form.
    """
    summary = getattr(result, "summary", None)
    if callable(summary):
        return str(summary())
    planes = "1 plane" if result.planes == 1 else f"{result.planes} planes"
    return f"Denoised {planes} in {result.seconds:.0f} s on {result.device}."


def first_sentence(text: str) -> str:
    """``text`` up to its first full stop followed by a space (decimals like 0.5 stay whole)."""
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


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


def _sample_planes(data: Any, axes: str, count: int) -> np.ndarray:
    """Up to ``count`` evenly spaced planes of a lazy array, read and flattened."""
    positions = [i for i, a in enumerate(axes) if a not in "YXS"]
    plane_shape = [data.shape[i] for i in positions]
    total = int(np.prod(plane_shape, dtype=np.int64))
    picks = np.unique(np.linspace(0, total - 1, min(total, count)).round().astype(np.int64))
    values = []
    for number in picks:
        key: list[Any] = [slice(None)] * len(axes)
        for position, i in zip(positions, np.unravel_index(number, plane_shape)):
            key[position] = int(i)
        values.append(np.asarray(data[tuple(key)]).ravel())
    return np.concatenate(values)


def noise_limits(noise_map: Any, axes: str | None = None, planes: int = 4) -> tuple[float, float]:
    """Contrast limits symmetric around 0 covering 99.9 % of the noise.

    A lazy noise map (with its ``axes``) is sampled: ``planes`` evenly spaced
    planes are read, not the whole array.
    """
    if axes is not None and not isinstance(noise_map, np.ndarray):
        noise_map = _sample_planes(noise_map, axes, planes)
    bound = float(np.percentile(np.abs(noise_map), 99.9)) if noise_map.size else 0.0
    if not np.isfinite(bound) or bound <= 0:
        bound = 1.0
    return -bound, bound


def _set_or_add(viewer: Any, name: str, data: Any, kwargs: dict[str, Any]) -> Any:
    """Replace the data and properties of layer ``name``, or add it if absent.

    ``data`` is an array, or a list of levels for a multiscale layer. A layer
    whose rgb flag, multiscale flag or dimensionality no longer matches is
    removed and added again at the same position.
    """
    limits = kwargs.pop("contrast_limits")
    multiscale = isinstance(data, list)
    full = data[0] if multiscale else data
    existing = viewer.layers[name] if name in viewer.layers else None
    if existing is not None and (
        existing.rgb != kwargs["rgb"]
        or existing.multiscale != multiscale
        or len(np.shape(full_resolution(existing))) != full.ndim
    ):
        index = viewer.layers.index(existing)
        viewer.layers.remove(existing)
        layer = viewer.add_image(data, name=name, contrast_limits=limits, multiscale=multiscale, **kwargs)
        viewer.layers.move(viewer.layers.index(layer), index)
        return layer
    if existing is None:
        return viewer.add_image(data, name=name, contrast_limits=limits, multiscale=multiscale, **kwargs)
    existing.data = data
    for key in ("scale", "translate", "axis_labels", "units", "metadata", "colormap"):
        if key in kwargs:
            setattr(existing, key, kwargs[key])
    if isinstance(full, np.ndarray):
        existing.contrast_limits_range = (min(limits[0], float(full.min())), max(limits[1], float(full.max())))
    else:  # lazy: reading every value for the range would read the whole result
        existing.contrast_limits_range = limits
    existing.contrast_limits = limits
    return existing


def _displayed(data: Any, source: Any) -> Any:
    """Result data as a layer shows it: a store through dask, levels for a multiscale input."""
    if isinstance(data, PlaneStore):
        data = data.to_dask()
    if getattr(source, "multiscale", False):
        return pyramid(data, [np.shape(level) for level in source.data])
    return data


def publish(viewer: Any, source: Any, result: DenoiseResult) -> tuple[Any, Any]:
    """Show a run's result as "<input> denoised" and "<input> noise map" layers.

    Both take the input layer's geometry (scale, translate, units, axis
    labels) and rgb flag, and record every parameter of the run in their
    metadata, with what was done in plain words ("summary"). Existing
    layers of these names are updated in place, so running again does not
    add copies. Results written into :class:`PlaneStore`
    arrays (lazy inputs) are shown through dask, as levels of a multiscale
    layer when the input is multiscale.
    """
    denoised_name, noise_name = result_names(source.name)
    meta = {**result.metadata(), "source_layer": source.name}
    meta.setdefault("summary", result_summary(result))
    common = {**layer_geometry(source), "rgb": bool(source.rgb)}
    limits = tuple(float(v) for v in source.contrast_limits)
    denoised = _set_or_add(
        viewer,
        denoised_name,
        _displayed(result.denoised, source),
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
        _displayed(result.noise_map, source),
        {
            **common,
            "contrast_limits": noise_limits(result.noise_map, result.axes),
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
