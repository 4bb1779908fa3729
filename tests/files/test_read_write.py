"""Reading and writing files: axes any layout, run metadata, lazy planes, atomic outputs (no torch)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_mpid.files import ImageReadError, open_image, read_image, write_ome_zarr, write_tiff

from ..tiff_files import header_only_huge_tiff

RUN = {"software": "napari-mpid test", "param_iterations": 2, "notes": ["a", "b"], "seed_text": "3", "scales": [[1, 2]]}


@pytest.mark.parametrize(
    "axes, shape, dtype",
    [
        ("QQYX", (2, 3, 40, 48), np.float32),
        ("TQQYX", (2, 2, 2, 40, 48), np.uint16),
        ("CQQYXS", (2, 2, 2, 40, 48, 3), np.float32),
        ("ZCYX", (2, 3, 40, 48), np.float64),
        ("XY", (48, 40), np.float32),
        ("QTYX", (2, 2, 40, 48), np.int16),
    ],
)
def test_any_axes_the_engine_accepts_are_written_and_read_back(tmp_path, axes, shape, dtype):
    data = (np.random.default_rng(0).random(shape) * 200).astype(dtype)
    path = tmp_path / "out.tif"

    write_tiff(path, data, axes, {"Y": 0.2, "X": 0.2}, "µm")
    image = read_image(path)

    assert image.axes == axes and image.data.shape == shape and image.data.dtype == dtype
    np.testing.assert_array_equal(image.data, data)
    assert image.scale["X"] == pytest.approx(0.2)


@pytest.mark.parametrize("axes", ["ZYX", "QYX", "ZCYX"])  # ImageJ, OME (modulo), OME
def test_run_metadata_is_stored_and_read_back(tmp_path, axes):
    shape = (2, 40, 48) if len(axes) == 3 else (2, 2, 40, 48)
    path = tmp_path / "out.tif"
    data = np.ones(shape, np.float32) if axes != "ZCYX" else np.ones(shape, np.float64)

    write_tiff(path, data, axes, metadata=RUN)

    assert read_image(path).metadata == RUN


def test_a_foreign_axis_letter_is_read_as_a_plane_axis(tmp_path):
    path = tmp_path / "lambda.tif"
    tifffile.imwrite(path, np.zeros((3, 40, 48), np.uint16), metadata={"axes": "EYX"})

    assert read_image(path).axes == "QYX"


def test_lazy_planes_of_an_uncompressed_tiff_are_read_from_the_file(tmp_path):
    data = np.arange(3 * 40 * 48, dtype=np.uint16).reshape(3, 40, 48)
    path = tmp_path / "stack.tif"
    write_tiff(path, data, "ZYX")

    image = open_image(path)

    assert not isinstance(image.data, np.ndarray) and image.shape == data.shape
    np.testing.assert_array_equal(image.data[1], data[1])
    image.close()


def test_lazy_planes_of_a_compressed_tiff_come_through_zarr(tmp_path):
    data = np.arange(3 * 40 * 48, dtype=np.uint16).reshape(3, 40, 48)
    path = tmp_path / "packed.tif"
    tifffile.imwrite(path, data, compression="zlib", metadata={"axes": "ZYX"})

    image = open_image(path)

    assert image.axes == "ZYX" and not isinstance(image.data, np.ndarray)
    np.testing.assert_array_equal(np.asarray(image.data[2]), data[2])
    image.close()


def _cut(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[: keep(len(data))])
    return path


def _truncated_imagej(tmp_path):
    write_tiff(tmp_path / "cut.tif", np.ones((3, 40, 48), np.uint16), "ZYX", metadata=RUN)
    return _cut(tmp_path / "cut.tif", lambda n: n - 3000)


def _truncated_compressed(tmp_path):
    data = np.random.default_rng(0).integers(0, 4000, (3, 40, 48), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "cut.tif", data, compression="zlib")
    return _cut(tmp_path / "cut.tif", lambda n: n // 2)


@pytest.mark.parametrize(
    "make, detail",
    [
        (_truncated_imagej, "tifffile: invalid page offset"),
        (_truncated_compressed, "byte"),
        (header_only_huge_tiff, "60000x60000 uint16"),
    ],
)
def test_a_truncated_tiff_is_refused_by_name_when_opened(tmp_path, capsys, make, detail):
    path = make(tmp_path)

    with pytest.raises(ImageReadError) as error:
        open_image(path)

    message = str(error.value)
    assert message.startswith(f"{path.name}: the file is truncated or damaged") and detail in message
    assert "mmap" not in message and capsys.readouterr().err == ""  # tifffile's warnings are not printed


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    import napari_mpid.files.write as writing

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(writing, "finalize", broken)
    path = tmp_path / "out.tif"
    with pytest.raises(OSError, match="disk full"):
        write_tiff(path, np.zeros((40, 48), np.float32), "YX")
    assert list(tmp_path.iterdir()) == []


def test_ome_zarr_round_trip_keeps_axes_scale_and_metadata(tmp_path):
    pytest.importorskip("ome_zarr")

    data = np.random.default_rng(2).random((2, 3, 40, 48)).astype(np.float32)
    path = tmp_path / "out.ome.zarr"

    write_ome_zarr(path, data, "ZCYX", {"Z": 0.5, "Y": 0.2, "X": 0.2}, "µm", RUN)
    image = read_image(path)

    assert image.axes == "ZCYX" and image.unit == "µm" and image.metadata == RUN
    assert image.scale == pytest.approx({"Z": 0.5, "Y": 0.2, "X": 0.2})
    np.testing.assert_array_equal(image.data, data)


def test_napari_writer_handles_4d_layers_without_axis_labels(tmp_path):
    from napari_mpid._writer import write_image

    data = np.random.default_rng(3).random((2, 3, 40, 48)).astype(np.float32)
    path = str(tmp_path / "layer.tif")

    assert write_image(path, data, {"scale": (1.0, 1.0, 0.5, 0.5)}) == [path]
    image = read_image(path)

    assert image.data.shape == data.shape and image.axes == "QQYX"
    np.testing.assert_array_equal(image.data, data)


def test_napari_writer_maps_labels_through_the_shared_axis_module(tmp_path):
    from napari_mpid._writer import write_image

    data = np.zeros((2, 3, 40, 48), np.float32)
    path = str(tmp_path / "layer.tif")

    write_image(path, data, {"axis_labels": ("time", "channel", "y", "x"), "scale": (1, 1, 1, 1)})

    assert read_image(path).axes == "TCYX"


def test_big_endian_tiff_planes_read_in_native_byte_order(tmp_path):
    data = np.arange(2 * 40 * 48, dtype=np.uint16).reshape(2, 40, 48)
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, data, byteorder=">", metadata={"axes": "ZYX"})

    image = open_image(path)

    assert image.dtype == np.uint16 and image.dtype.isnative
    np.testing.assert_array_equal(image.data[1], data[1])
    image.close()
