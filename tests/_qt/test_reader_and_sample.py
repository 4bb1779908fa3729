"""Opening files and the sample through napari with this plugin."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mpid import _sample_data
from napari_mpid._qt.layers import guess_axes
from napari_mpid.core.cache import CACHE_ENV
from napari_mpid.io import write_tiff

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
    """A user cache seeded with the FMD sample's files from ../shared; no network."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(_sample_data.urllib.request, "urlopen", None)  # a download attempt fails loudly
    folder = SHARED / "data" / "eval" / "fmd_test_mix"
    if not folder.is_dir():
        pytest.skip("../shared/data/eval/fmd_test_mix is not available to seed the sample cache")
    if _sample_data.place_fmd_files(folder) != len(_sample_data.FMD_FILES):
        pytest.skip("the FMD files in ../shared do not match the sample's pinned SHA-256")
    return tmp_path


def test_the_real_sample_opens_as_a_time_series_with_its_clean_reference(make_napari_viewer, fmd_cache):
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
