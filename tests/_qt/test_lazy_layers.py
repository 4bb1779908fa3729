"""Lazy layers (dask, zarr, multiscale): read plane by plane, results written to disk and shown through dask."""

from __future__ import annotations

import gc
import sys

import dask.array as da
import numpy as np
import pytest

from napari_mpid._qt import widget as widget_module
from napari_mpid._qt.stores import PlaneStore

from .conftest import run_to_end


@pytest.fixture
def worker_inputs(monkeypatch) -> list[dict]:
    """What the widget hands to its worker: the image and the output stores of every run."""
    calls: list[dict] = []
    original = widget_module._run

    def recording(image, params, axes, preview_every, out=None, noise_out=None):
        calls.append({"image": image, "out": out, "noise_out": noise_out})
        return (yield from original(image, params, axes, preview_every, out, noise_out))

    monkeypatch.setattr(widget_module, "_run", recording)
    return calls


def test_numpy_layer_data_is_copied_on_the_main_thread(qtbot, viewer_with_widget, worker_inputs):
    viewer, widget = viewer_with_widget

    run_to_end(qtbot, widget)

    [call] = worker_inputs
    assert isinstance(call["image"], np.ndarray)
    assert not np.shares_memory(call["image"], viewer.layers["cells"].data)
    assert call["out"] is None and call["noise_out"] is None
    assert isinstance(viewer.layers["cells denoised"].data, np.ndarray)


def test_dask_layer_is_passed_lazily_and_gives_dask_result_layers(qtbot, viewer_with_widget, stack, worker_inputs):
    viewer, widget = viewer_with_widget
    lazy = da.from_array(stack, chunks=(1, 48, 48))
    viewer.add_image(lazy, name="lazy", axis_labels=("z", "y", "x"), scale=(2.0, 0.5, 0.5))
    widget.image.value = viewer.layers["lazy"]
    widget.controls["seed"].value = 5

    run_to_end(qtbot, widget)
    widget.image.value = viewer.layers["cells"]
    run_to_end(qtbot, widget)  # the same data in memory, for comparison

    lazy_call = worker_inputs[0]
    assert lazy_call["image"] is lazy  # never copied, read plane by plane by the worker
    assert isinstance(lazy_call["out"], PlaneStore) and isinstance(lazy_call["noise_out"], PlaneStore)
    denoised, noise = viewer.layers["lazy denoised"], viewer.layers["lazy noise map"]
    for layer in (denoised, noise):
        assert isinstance(layer.data, da.Array) and layer.data.shape == stack.shape
        assert layer.data.dtype == np.float32
        np.testing.assert_allclose(layer.scale, (2.0, 0.5, 0.5))
        assert layer.metadata["param_seed"] == 5
    np.testing.assert_allclose(np.asarray(denoised.data), viewer.layers["cells denoised"].data, atol=1e-4)
    np.testing.assert_allclose(np.asarray(denoised.data) + np.asarray(noise.data), stack, atol=1e-3)
    low, high = noise.contrast_limits
    assert low == pytest.approx(-high) and high > 0


def test_zarr_layer_is_processed_without_loading_it(qtbot, viewer_with_widget, stack, tmp_path, worker_inputs):
    zarr = pytest.importorskip("zarr")
    viewer, widget = viewer_with_widget
    stored = zarr.open_array(
        store=str(tmp_path / "in.zarr"), mode="w", shape=stack.shape, chunks=(1, 48, 48), dtype=stack.dtype
    )
    stored[:] = stack
    viewer.add_image(stored, name="stored", axis_labels=("z", "y", "x"), contrast_limits=(0, 100))
    widget.image.value = viewer.layers["stored"]

    run_to_end(qtbot, widget)

    assert worker_inputs[0]["image"] is stored
    assert isinstance(viewer.layers["stored denoised"].data, da.Array)
    np.testing.assert_allclose(
        np.asarray(viewer.layers["stored denoised"].data) + np.asarray(viewer.layers["stored noise map"].data),
        stack,
        atol=1e-3,
    )


def test_multiscale_layer_is_denoised_at_full_resolution_into_multiscale_results(qtbot, viewer_with_widget):
    viewer, widget = viewer_with_widget
    full = np.random.default_rng(3).poisson(40, (2, 96, 96)).astype(np.uint16)
    levels = [da.from_array(full, chunks=(1, 96, 96)), da.from_array(full[:, ::2, ::2], chunks=(1, 48, 48))]
    viewer.add_image(levels, name="pyramid", multiscale=True, axis_labels=("z", "y", "x"), contrast_limits=(0, 80))
    widget.image.value = viewer.layers["pyramid"]
    assert widget.axes.value == "ZYX"
    assert "2 planes of 96x96 pixels" in widget.axes_status.value

    run_to_end(qtbot, widget)

    for name in ("pyramid denoised", "pyramid noise map"):
        layer = viewer.layers[name]
        assert layer.multiscale
        assert [level.shape for level in layer.data] == [(2, 96, 96), (2, 48, 48)]
    denoised = np.asarray(viewer.layers["pyramid denoised"].data[0])
    noise = np.asarray(viewer.layers["pyramid noise map"].data[0])
    np.testing.assert_allclose(denoised + noise, full, atol=1e-3)
    np.testing.assert_allclose(np.asarray(viewer.layers["pyramid denoised"].data[1]), denoised[:, ::2, ::2])


@pytest.mark.parametrize("backend", ["zarr", "numpy memory map"])
def test_plane_store_writes_planes_reads_lazily_and_removes_its_directory(monkeypatch, backend):
    if backend == "zarr":
        pytest.importorskip("zarr")
    else:
        monkeypatch.setitem(sys.modules, "zarr", None)  # "import zarr" raises ImportError
    store = PlaneStore((2, 40, 50, 3), "ZYXS", "test")
    path = store.path
    assert store.chunks == (1, 40, 50, 3)
    plane = np.arange(40 * 50 * 3, dtype=np.float32).reshape(40, 50, 3)

    store[1, :, :, :] = plane
    lazy = store.to_dask()
    del store

    np.testing.assert_array_equal(np.asarray(lazy[1]), plane)
    np.testing.assert_array_equal(np.asarray(lazy[0]), 0)
    assert path.exists()
    del lazy
    gc.collect()
    assert not path.exists()
