"""The napari reader: which paths it takes, and what layers it makes (no Qt, no torch)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from napari_mpid._reader import napari_get_reader, read_files
from napari_mpid.files import write_tiff


@pytest.fixture
def imagej_stack(tmp_path):
    data = np.arange(3 * 40 * 50, dtype=np.uint16).reshape(3, 40, 50)
    path = tmp_path / "stack.tif"
    write_tiff(path, data, "ZYX", {"Z": 2.0, "Y": 0.25, "X": 0.25}, "µm")
    return path, data


def test_reader_returns_none_for_paths_it_does_not_handle(tmp_path):
    assert napari_get_reader(str(tmp_path / "notes.txt")) is None
    assert napari_get_reader(str(tmp_path / "points.csv")) is None
    assert napari_get_reader([str(tmp_path / "a.tif"), str(tmp_path / "b.txt")]) is None
    assert napari_get_reader([]) is None


def test_imagej_tiff_round_trip_keeps_axes_and_pixel_size(imagej_stack):
    path, data = imagej_stack

    reader = napari_get_reader(str(path))
    assert reader is not None
    [(array, kwargs, kind)] = reader(str(path))

    assert kind == "image"
    np.testing.assert_array_equal(array, data)
    assert kwargs["name"] == "stack"
    assert kwargs["axis_labels"] == ("z", "y", "x")
    assert kwargs["scale"] == pytest.approx((2.0, 0.25, 0.25))
    assert kwargs["rgb"] is False
    assert kwargs["metadata"]["axes"] == "ZYX"
    if "units" in kwargs:
        assert kwargs["units"] == ("micrometer",) * 3


def test_rgb_tiff_becomes_an_rgb_layer_without_a_scale_for_the_colour_axis(tmp_path):
    data = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    path = tmp_path / "photo.tif"
    write_tiff(path, data, "YXS")

    [(array, kwargs, _)] = read_files(str(path))

    assert kwargs["rgb"] is True
    assert array.shape == (40, 50, 3)
    assert len(kwargs["scale"]) == 2 and kwargs["axis_labels"] == ("y", "x")


def test_a_list_of_tiffs_gives_one_layer_per_file(imagej_stack, tmp_path):
    path, _ = imagej_stack
    other = tmp_path / "other.tif"
    write_tiff(other, np.zeros((40, 50), np.uint16), "YX")

    layers = napari_get_reader([str(path), str(other)])([str(path), str(other)])

    assert [kwargs["name"] for _, kwargs, _ in layers] == ["stack", "other"]


def test_reader_module_does_not_import_torch():
    code = "import sys, napari_mpid._reader, napari_mpid._sample_data; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_writer_round_trip_keeps_axes_scale_and_float_data(tmp_path):
    from napari_mpid._writer import write_image

    data = np.random.default_rng(1).normal(100, 5, (2, 40, 50))
    path = str(tmp_path / "denoised.tif")
    meta = {
        "axis_labels": ("z", "y", "x"),
        "scale": (2.0, 0.5, 0.5),
        "units": ("micrometer",) * 3,
        "metadata": {"param_iterations": 2, "model": "random-init:1:single", "intensity_scales": [[1, 2]]},
    }

    assert write_image(path, data, meta) == [path]
    [(array, kwargs, _)] = read_files(path)

    assert array.dtype == np.float32
    np.testing.assert_allclose(array, data, rtol=1e-6)
    assert kwargs["axis_labels"] == ("z", "y", "x")
    assert kwargs["scale"] == pytest.approx((2.0, 0.5, 0.5))


def test_reader_gives_repeated_plane_axes_unique_labels(tmp_path):
    import tifffile

    path = tmp_path / "planes.tif"
    tifffile.imwrite(path, np.zeros((2, 5, 40, 50), np.uint16))  # tifffile names the leading axes Q, Q

    [(array, kwargs, _)] = read_files(str(path))

    assert array.shape == (2, 5, 40, 50)
    assert kwargs["axis_labels"] == ("q", "q1", "y", "x")


def test_reader_maps_foreign_axis_letters_to_plane_axes(tmp_path):
    import tifffile

    path = tmp_path / "lambda.tif"
    tifffile.imwrite(path, np.zeros((3, 40, 50), np.uint16), metadata={"axes": "EYX"})

    [(_, kwargs, _)] = read_files(str(path))

    assert kwargs["metadata"]["axes"] == "QYX" and kwargs["axis_labels"] == ("q", "y", "x")
