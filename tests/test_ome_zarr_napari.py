"""An OME-Zarr written by the CLI opens in napari (napari-ome-zarr) with the input's scale and axis names.

Needs a display: run under Xvfb (pytest-xvfb starts one; see tox.ini).
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_mpid.cli import main
from napari_mpid.files import read_image, write_tiff


def test_ome_zarr_output_opens_in_napari_with_the_inputs_scale_and_axes(make_napari_viewer, tmp_path):
    pytest.importorskip("napari_ome_zarr")
    source, out = tmp_path / "cells.tif", tmp_path / "cells.ome.zarr"
    data = (np.random.default_rng(0).poisson(40, (3, 48, 48)) + 100).astype(np.uint16)
    write_tiff(source, data, "ZYX", {"Z": 0.5, "Y": 0.13, "X": 0.13}, "µm")
    args = ["denoise", str(source), "-o", str(out), "--iterations", "2", "--model", "random-init:1:single", "-q"]
    assert main(args) == 0
    viewer = make_napari_viewer()

    [layer] = viewer.open(str(out), plugin="napari-ome-zarr")

    assert tuple(layer.axis_labels) == ("z", "y", "x")
    assert tuple(layer.scale) == pytest.approx((0.5, 0.13, 0.13))
    full = layer.data[0] if layer.multiscale else layer.data
    np.testing.assert_array_equal(np.asarray(full), read_image(out).data)
    if hasattr(layer, "units"):  # napari >= 0.6
        assert [str(u) for u in layer.units] == ["micrometer"] * 3
