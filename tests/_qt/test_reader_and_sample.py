"""Opening files and the sample through napari with this plugin."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mpid.io import write_tiff


def test_viewer_opens_an_imagej_tiff_with_its_scale_through_the_plugin(make_napari_viewer, tmp_path):
    path = tmp_path / "stack.tif"
    data = np.random.default_rng(0).integers(0, 1000, (3, 40, 50), dtype=np.uint16)
    write_tiff(path, data, "ZYX", {"Z": 2.0, "Y": 0.25, "X": 0.25}, "µm")
    viewer = make_napari_viewer()

    [layer] = viewer.open(str(path), plugin="napari-mpid")

    np.testing.assert_array_equal(layer.data, data)
    assert tuple(layer.scale) == pytest.approx((2.0, 0.25, 0.25))
    assert tuple(layer.axis_labels) == ("z", "y", "x")


def test_sample_loads_noisy_and_clean_layers(make_napari_viewer):
    viewer = make_napari_viewer()

    viewer.open_sample("napari-mpid", "fluorescence")

    assert {layer.name for layer in viewer.layers} == {"noisy", "clean"}
    assert viewer.layers["noisy"].data.dtype == np.uint16
    assert viewer.layers["noisy"].data.shape == viewer.layers["clean"].data.shape
