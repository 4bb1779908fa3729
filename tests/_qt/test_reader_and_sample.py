"""Opening files and the sample through napari with this plugin."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mpid import _sample_data
from napari_mpid._qt.layers import guess_axes
from napari_mpid.core.cache import CACHE_ENV
from napari_mpid.files import write_tiff

from ..conftest import SHARED


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


@pytest.fixture
def fmd_cache(tmp_path, monkeypatch):
    """A user cache seeded with the FMD sample's files from ../shared; no network.

    Request it before ``make_napari_viewer``: a skip here must come before the
    viewer fixture is set up, whose teardown reads the call's report, which a
    test skipped during setup never has.
    """
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(_sample_data.urllib.request, "urlopen", None)  # a download attempt fails loudly
    folder = SHARED / "data" / "eval" / "fmd_test_mix"
    if not folder.is_dir():
        pytest.skip("../shared/data/eval/fmd_test_mix is not available to seed the sample cache")
    if _sample_data.place_fmd_files(folder) != len(_sample_data.FMD_FILES):
        pytest.skip("the FMD files in ../shared do not match the sample's pinned SHA-256")
    return tmp_path


def test_the_real_sample_opens_as_a_time_series_with_its_clean_reference(fmd_cache, make_napari_viewer):
    viewer = make_napari_viewer()

    viewer.open_sample("napari-mpid", "fmd_two_photon")

    assert {layer.name for layer in viewer.layers} == {"TwoPhoton_BPAE_G noisy", "TwoPhoton_BPAE_G clean"}
    noisy, clean = viewer.layers["TwoPhoton_BPAE_G noisy"], viewer.layers["TwoPhoton_BPAE_G clean"]
    assert noisy.data.shape == (4, 512, 512) and noisy.data.dtype == np.uint8
    assert guess_axes(noisy) == "TYX"  # the widget sees 4 frames along T (context or static_scene)
    assert clean.data.shape == (512, 512) and not clean.visible
    for layer in (noisy, clean):
        assert "Zhang et al., CVPR 2019" in layer.metadata["source"]
        assert layer.metadata["license"].startswith("MIT License")
    assert "mean of 50 captures" in clean.metadata["description"]
    assert "4 raw captures" in noisy.metadata["description"]


def test_the_widget_denoises_the_real_sample_and_says_what_produced_the_result(fmd_cache, make_napari_viewer, qtbot):
    # The first minute of a new user: open the real sample, press Run with the defaults.
    from .conftest import TEST_MODEL, run_to_end

    viewer = make_napari_viewer()
    viewer.open_sample("napari-mpid", "fmd_two_photon")
    _, widget = viewer.window.add_plugin_dock_widget("napari-mpid", "Zero-shot denoise")
    widget.image.value = viewer.layers["TwoPhoton_BPAE_G noisy"]
    widget.controls["model"].value = TEST_MODEL
    widget.controls["iterations"].value = 2
    widget.controls["device"].value = "cpu"

    run_to_end(qtbot, widget)

    denoised = viewer.layers["TwoPhoton_BPAE_G noisy denoised"]
    noisy, clean = viewer.layers["TwoPhoton_BPAE_G noisy"].data, viewer.layers["TwoPhoton_BPAE_G clean"].data
    assert denoised.data.shape == noisy.shape and "TwoPhoton_BPAE_G noisy noise map" in viewer.layers
    # Shot noise: the auto preset's mix does the work, without the network, and the
    # status line says so.
    assert widget.status.value.startswith("Denoised 4 planes in ")
    assert "without the network: " in widget.status.value and "neighbour planes" in widget.status.value
    assert denoised.metadata["produced_by"]["network"] == 0.0

    def mse(x):
        return float(np.mean((np.asarray(x, dtype=np.float64) - clean.astype(np.float64)) ** 2))

    assert mse(denoised.data[0]) < mse(noisy[0]) / 3
