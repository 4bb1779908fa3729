"""A full disk is a one-line error, never a signal; what was finished stays resumable."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_mpid.cli import main
from napari_mpid.files import read_image, write_tiff

TINY = ["--iterations", "2", "--model", "random-init:1:single", "--seed", "1", "-q"]


def _stack(path: Path, planes: int = 3) -> None:
    # Shot noise that grows with the signal (as fluorescence): the auto preset's mix alone runs.
    mean = np.broadcast_to(np.linspace(20.0, 120.0, 48), (planes, 48, 48))
    data = (np.random.default_rng(0).poisson(mean) + 100).astype(np.uint16)
    write_tiff(path, data, "ZYX")


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("napari-mpid: error:") and len(err.splitlines()) == 1, err
    return err


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_an_output_the_disk_cannot_hold_is_refused_before_any_compute(tmp_path, capsys, monkeypatch):
    import napari_mpid.batch.run as run
    import napari_mpid.files.write as writing

    source, out = tmp_path / "stack.tif", tmp_path / "out.tif"
    _stack(source)
    monkeypatch.setattr(writing.os, "posix_fallocate", _no_space, raising=False)
    monkeypatch.setattr(run, "run_prepared", pytest.fail)  # no plane is filled

    code = main(["denoise", str(source), "-o", str(out), *TINY])

    error = _one_error_line(capsys)
    assert code == 2 and "disk full" in error and str(out) in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.tif"]


@pytest.mark.parametrize("stage", ["plane", "metadata"])
def test_a_disk_that_fills_during_the_run_keeps_the_finished_planes_for_resume(tmp_path, capsys, monkeypatch, stage):
    source, reference, out = tmp_path / "stack.tif", tmp_path / "reference.tif", tmp_path / "out.tif"
    _stack(source)
    assert main(["denoise", str(source), "-o", str(reference), *TINY]) == 0

    with monkeypatch.context() as m:
        if stage == "plane":  # the second plane's write finds the disk full
            real_pwrite, calls = os.pwrite, []

            def pwrite_once(fd, data, offset):
                calls.append(offset)
                return real_pwrite(fd, data, offset) if len(calls) == 1 else _no_space()

            m.setattr(os, "pwrite", pwrite_once)
        else:  # no room left for the run's metadata once every plane is written
            m.setattr(tifffile.TiffTag, "overwrite", _no_space)
        assert main(["denoise", str(source), "-o", str(out), *TINY]) == 2
    error = _one_error_line(capsys)
    assert "disk full" in error and str(out) in error and "--resume" in error
    assert not out.exists() and (tmp_path / "out.tif.partial").exists()
    finished = (tmp_path / "out.tif.journal" / "planes.log").read_text().split()
    assert len(finished) == (1 if stage == "plane" else 3)

    assert main(["denoise", str(source), "-o", str(out), "--resume", *TINY]) == 0
    np.testing.assert_array_equal(read_image(out).data, read_image(reference).data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif", "reference.tif", "stack.tif"]


@pytest.fixture
def small_disk(tmp_path):
    """A 40 KiB tmpfs (root only; skipped elsewhere)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.mark.slow
def test_a_real_full_disk_exits_with_an_error_not_a_signal(tmp_path, small_disk):
    source, out = tmp_path / "in.tif", small_disk / "out.tif"
    data = (np.random.default_rng(0).poisson(40, (4, 64, 64)) + 100).astype(np.uint16)
    write_tiff(source, data, "ZYX")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "napari_mpid.cli", "denoise", str(source), "-o", str(out), "--preset", "fast"]

    run = subprocess.run([*command, *TINY], env=env, capture_output=True, text=True, timeout=300)

    assert run.returncode == 2, (run.returncode, run.stderr)
    assert run.stderr.startswith("napari-mpid: error: disk full") and str(out) in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not out.exists()

    subprocess.run(["mount", "-o", "remount,size=1m", str(small_disk)], check=True)
    again = "--resume" if (small_disk / "out.tif.journal").exists() else "--overwrite"
    rerun = subprocess.run([*command, again, *TINY], env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert read_image(out).data.shape == data.shape
