"""The real FMD sample: pinned files in the user cache, downloaded on first use, a clear error offline."""

from __future__ import annotations

import io
import urllib.error

import numpy as np
import pytest

from napari_mpid import _sample_data as sample
from napari_mpid.core.cache import CACHE_ENV

from .conftest import SHARED

FMD = SHARED / "data" / "eval" / "fmd_test_mix"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty user cache, and no network: a test that reaches urlopen fails unless it says otherwise."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))

    def offline(url, timeout=None):
        raise urllib.error.URLError("network unreachable (test)")

    monkeypatch.setattr(sample.urllib.request, "urlopen", offline)
    return tmp_path


@pytest.fixture
def seeded(cache):
    """The cache holding the sample's files, copied from ../shared (the pinned hashes must match)."""
    if not FMD.is_dir():
        pytest.skip("../shared/data/eval/fmd_test_mix is not available to seed the sample cache")
    if sample.place_fmd_files(FMD) != len(sample.FMD_FILES):
        pytest.skip("the FMD files in ../shared do not match the sample's pinned SHA-256")
    return cache


def test_the_two_photon_series_is_four_real_captures_and_the_clean_mean(seeded):
    noisy, clean, paths = sample.fmd_series("TwoPhoton_BPAE_G")

    assert noisy.shape == (4, 512, 512) and noisy.dtype == np.uint8
    assert clean.shape == (512, 512) and clean.dtype == np.uint8
    assert paths[-1] == "gt/TwoPhoton_BPAE_G_1.png"
    # Four exposures of one field: each differs from the others by its own noise, and their mean is
    # closer to the 50-frame reference than any single capture.
    frames = noisy.astype(np.float64)
    errors = [np.mean((f - clean) ** 2) for f in frames]
    assert len({f.tobytes() for f in noisy}) == 4
    assert np.mean((frames.mean(0) - clean) ** 2) < 0.5 * min(errors)


def test_the_layers_name_the_source_and_the_licence(seeded):
    clean, noisy = sample.fmd_wide_field_sample()

    assert clean[1]["name"] == "WideField_BPAE_R clean" and noisy[1]["name"] == "WideField_BPAE_R noisy"
    assert noisy[1]["axis_labels"] == ("t", "y", "x") and noisy[0].shape == (4, 512, 512)
    for _, kwargs, kind in (clean, noisy):
        meta = kwargs["metadata"]
        assert kind == "image" and "Zhang et al., CVPR 2019" in meta["source"]
        assert meta["license"].startswith("MIT License") and "yinhaoz/denoising-fluorescence" in meta["license"]
        assert all(sample.FMD_COMMIT in url for url in meta["urls"]) and len(meta["sha256"]) == 5
    assert "mean of 50" in clean[1]["metadata"]["description"]


def test_offline_the_error_is_one_line_naming_the_address_and_where_to_put_the_file(cache):
    with pytest.raises(sample.SampleDataError) as caught:
        sample.fmd_two_photon_sample()

    message = str(caught.value)
    target = cache / "samples" / "fmd_test_mix" / "raw" / "TwoPhoton_BPAE_G_1.png"
    assert "\n" not in message
    assert sample.FMD_URL.format(commit=sample.FMD_COMMIT, path="raw/TwoPhoton_BPAE_G_1.png") in message
    assert str(target) in message and "network unreachable" in message and "place_fmd_files" in message
    assert not list(cache.rglob("*.png*"))  # nothing partial left behind


def test_a_download_is_checked_against_its_pinned_digest(cache, monkeypatch):
    served = {}
    monkeypatch.setattr(sample.urllib.request, "urlopen", lambda url, timeout=None: io.BytesIO(served[url]))
    path = "raw/TwoPhoton_BPAE_G_1.png"
    url = sample.FMD_URL.format(commit=sample.FMD_COMMIT, path=path)
    served[url] = b"not the file"

    with pytest.raises(sample.SampleDataError, match="not the expected one"):
        sample.fetch_fmd_file(path)
    assert not list(cache.rglob("*.png*"))

    content = b"the pinned file"
    monkeypatch.setitem(sample.FMD_FILES, path, sample.hashlib.sha256(content).hexdigest())
    served[url] = content
    target = sample.fetch_fmd_file(path)
    assert target.read_bytes() == content
    del served[url]  # cached now: no second download
    assert sample.fetch_fmd_file(path) == target


def test_a_damaged_cached_file_is_refused_by_name(cache):
    target = cache / "samples" / "fmd_test_mix" / "gt" / "TwoPhoton_BPAE_G_1.png"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"truncated")

    with pytest.raises(sample.SampleDataError, match="is not the expected file") as caught:
        sample.fetch_fmd_file("gt/TwoPhoton_BPAE_G_1.png")
    assert str(target) in str(caught.value) and target.read_bytes() == b"truncated"  # the user's file is kept


def test_only_files_with_the_pinned_digest_are_placed(cache, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fmd")
    (folder / "raw").mkdir()
    (folder / "raw" / "TwoPhoton_BPAE_G_1.png").write_bytes(b"another image")

    assert sample.place_fmd_files(folder) == 0
    assert not list(cache.rglob("*.png"))


def test_an_unknown_configuration_is_refused(cache):
    with pytest.raises(sample.SampleDataError, match="unknown FMD sample 'Confocal_X'"):
        sample.fmd_series("Confocal_X")
