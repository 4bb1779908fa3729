"""The resume journal: finished planes, extra entries, and what refuses a resume (no torch)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mpid.batch.journal import Journal, JournalMismatch, fingerprint


def test_finished_planes_survive_a_torn_last_line(tmp_path):
    journal = Journal(tmp_path / "out.tif")
    journal.create({"input": {}, "settings": {}})
    journal.mark([0, 2])
    with open(journal.log_path, "a") as fh:
        fh.write("1")  # killed while writing "1\n"

    assert Journal(tmp_path / "out.tif").finished() == {0, 2}
    assert journal.folder.name == "out.tif.journal"


def test_extra_entries_are_kept_beside_the_plane_log(tmp_path):
    journal = Journal(tmp_path / "out.tif")
    journal.create({"input": {}, "settings": {}})

    journal.save_extra("fitted-0.pt", b"weights")

    assert journal.load_extra("fitted-0.pt") == b"weights" and journal.load_extra("fitted-1.pt") is None
    with pytest.raises(ValueError):
        journal.save_extra("planes.log", b"")


def test_a_changed_input_or_setting_is_named(tmp_path):
    source = tmp_path / "in.bin"
    source.write_bytes(b"pixels")
    data = np.arange(3 * 4 * 4).reshape(3, 4, 4)
    planes = [(i, slice(None), slice(None)) for i in range(3)]
    journal = Journal(tmp_path / "out.tif")
    journal.create({"input": fingerprint(source, data, planes), "settings": {"iterations": 2}})

    journal.check(fingerprint(source, data, planes), {"iterations": 2})
    with pytest.raises(JournalMismatch, match="iterations: 2 -> 3"):
        journal.check(fingerprint(source, data, planes), {"iterations": 3})
    with pytest.raises(JournalMismatch, match="the input changed"):
        journal.check(fingerprint(source, data + 1, planes), {"iterations": 2})


def test_a_journal_with_relative_output_paths_matches_them_made_absolute(tmp_path, monkeypatch):
    """Journals written before outputs were recorded absolute still resume from the same folder."""
    source = tmp_path / "in.bin"
    source.write_bytes(b"pixels")
    data = np.arange(3 * 4 * 4).reshape(3, 4, 4)
    planes = [(i, slice(None), slice(None)) for i in range(3)]
    monkeypatch.chdir(tmp_path)
    journal = Journal("out.tif")
    journal.create({"input": fingerprint(source, data, planes), "settings": {"outputs": ["out.tif"]}})

    journal.check(fingerprint(source, data, planes), {"outputs": [str(tmp_path / "out.tif")]})
    with pytest.raises(JournalMismatch, match="outputs"):
        journal.check(fingerprint(source, data, planes), {"outputs": [str(tmp_path / "other.tif")]})
