"""The denoise command on real-data sizes: output checks, atomic outputs, batches, resume, Dask."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_mpid.cli import main
from napari_mpid.files import read_image, write_tiff

TINY = ["--iterations", "2", "--model", "random-init:1:single", "--seed", "1", "-q"]


def _stack(path: Path, planes: int = 2, seed: int = 0, axes: str = "ZYX") -> np.ndarray:
    data = (np.random.default_rng(seed).poisson(40, (planes, 48, 48)) + 100).astype(np.uint16)
    write_tiff(path, data, axes, {"Z": 0.5, "Y": 0.13, "X": 0.13}, "µm")
    return data


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("napari-mpid: error:") and len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def stack(tmp_path) -> Path:
    path = tmp_path / "stack.tif"
    _stack(path)
    return path


# --- output paths are checked before any compute -----------------------------------------------------------


@pytest.fixture
def no_compute(monkeypatch):
    """Make any compute fail loudly: the checks under test must come first."""
    import napari_mpid.core.engine as engine

    def refuse(*args, **kwargs):
        raise AssertionError("compute started before the output checks")

    monkeypatch.setattr(engine, "denoise_planes", refuse)


@pytest.mark.parametrize(
    "noise_map, message",
    [
        ("missing/noise.tif", "does not exist"),
        ("noise.png", "must end in .tif"),
        ("out.tif", "two outputs are named"),
        ("stack.tif", "is an input file"),
    ],
)
def test_noise_map_path_is_checked_before_any_compute(stack, tmp_path, capsys, no_compute, noise_map, message):
    before = stack.read_bytes()
    code = main(
        ["denoise", str(stack), "-o", str(tmp_path / "out.tif"), "--noise-map", str(tmp_path / noise_map), *TINY]
    )

    assert code == 2 and message in _one_error_line(capsys)
    assert not (tmp_path / "out.tif").exists() and stack.read_bytes() == before
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob("*.journal"))


@pytest.mark.parametrize(
    "option, name, inputs",
    [("-o", "result.png", 1), ("-o", "result.JPG", 1), ("-o", "result.czi", 2), ("--noise-map", "noise.png", 2)],
)
def test_an_output_named_like_an_image_we_cannot_write_is_refused(
    stack, tmp_path, capsys, no_compute, option, name, inputs
):
    """``-o result.png`` wrote a folder result.png/ holding stack.tif, with exit status 0."""
    sources = [stack] + ([tmp_path / "second.tif"] if inputs > 1 else [])
    if inputs > 1:
        _stack(sources[1], seed=1)
    out = tmp_path / ("result" if option != "-o" else name)
    extra = ["--noise-map", str(tmp_path / name)] if option == "--noise-map" else []

    code = main(["denoise", *map(str, sources), "-o", str(out), *extra, *TINY])

    error = _one_error_line(capsys)
    assert code == 2 and f"{option} {name}: napari-mpid cannot write" in error and "must end in .tif" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in sources)


def test_output_may_not_be_the_input(stack, capsys, no_compute):
    before = stack.read_bytes()

    assert main(["denoise", str(stack), "-o", str(stack), *TINY]) == 2
    assert "is an input file" in _one_error_line(capsys) and stack.read_bytes() == before


def test_outputs_appear_together_or_not_at_all(stack, tmp_path, capsys, monkeypatch):
    import napari_mpid.files.write as writing

    real_replace, calls = os.replace, []

    def fail_second_rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("disk vanished")
        real_replace(src, dst)

    monkeypatch.setattr(writing.os, "replace", fail_second_rename)
    out, noise = tmp_path / "out.tif", tmp_path / "noise.tif"
    code = main(["denoise", str(stack), "-o", str(out), "--noise-map", str(noise), *TINY])

    assert code == 2 and "disk vanished" in _one_error_line(capsys)
    assert not out.exists() and not noise.exists()
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob("*.journal"))


# --- axes ----------------------------------------------------------------------------------------------------


def test_a_foreign_tifffile_axis_is_denoised_as_planes(tmp_path, capsys):
    path, out = tmp_path / "lambda.tif", tmp_path / "out.tif"
    data = (np.random.default_rng(0).poisson(40, (2, 48, 48)) + 100).astype(np.uint16)
    tifffile.imwrite(path, data, metadata={"axes": "EYX"})

    assert main(["denoise", str(path), "-o", str(out), *TINY]) == 0, capsys.readouterr().err
    assert read_image(out).data.shape == data.shape


def test_two_plane_axes_are_written_and_read_back(tmp_path, capsys):
    path, out, noise = tmp_path / "planes.tif", tmp_path / "out.tif", tmp_path / "noise.tif"
    data = (np.random.default_rng(0).poisson(40, (2, 5, 48, 48)) + 100).astype(np.uint16)
    tifffile.imwrite(path, data)  # tifffile reads the leading axes as Q, Q

    code = main(["denoise", str(path), "-o", str(out), "--noise-map", str(noise), "--dtype", "input", *TINY])

    assert code == 0, capsys.readouterr().err
    denoised, noise_map = read_image(out), read_image(noise)
    assert denoised.axes == "QQYX" and denoised.data.shape == data.shape and denoised.data.dtype == np.uint16
    assert noise_map.data.shape == data.shape
    assert denoised.metadata["model"] == "random-init:1:single" and denoised.metadata["planes"] == 10


# --- batches -------------------------------------------------------------------------------------------------


def test_batch_of_folder_and_glob_writes_one_output_per_input_and_a_summary(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    for name in ("a", "b"):
        _stack(tmp_path / "in" / f"{name}.tif", seed=ord(name))
    _stack(tmp_path / "c.tif", seed=3)
    outdir = tmp_path / "out"

    code = main(["denoise", str(tmp_path / "in"), str(tmp_path / "c*.tif"), "-o", str(outdir), *TINY])

    out = capsys.readouterr().out
    assert code == 0
    assert sorted(p.name for p in outdir.iterdir()) == ["a.tif", "b.tif", "c.tif"]
    assert "summary: 3 done, 0 skipped, 0 failed" in out
    # The same command again: the outputs exist, nothing is computed.
    assert main(["denoise", str(tmp_path / "in"), str(tmp_path / "c*.tif"), "-o", str(outdir), *TINY]) == 0
    assert "summary: 0 done, 3 skipped, 0 failed" in capsys.readouterr().out


def test_a_bad_file_fails_alone_with_keep_going(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    for good in ("a.tif", "d.tif", "e.tif"):  # three good files around two bad ones
        _stack(tmp_path / "in" / good)
    bad = np.ones((48, 48), np.float32)
    bad[3, 3] = np.nan
    tifffile.imwrite(tmp_path / "in" / "b.tif", bad)
    (tmp_path / "in" / "c.tif").write_bytes(b"junk")
    outdir = tmp_path / "out"

    code = main(["denoise", str(tmp_path / "in"), "-o", str(outdir), "--keep-going", *TINY])

    captured = capsys.readouterr()
    errors = [line for line in captured.err.strip().splitlines() if not line.startswith("warning:")]
    assert code == 2 and len(errors) == 2
    assert "b.tif" in errors[0] and "NaN or infinite" in errors[0]
    assert "c.tif" in errors[1] and "cannot read image" in errors[1]
    assert "summary: 3 done, 0 skipped, 2 failed" in captured.out
    assert sorted(p.name for p in outdir.iterdir()) == ["a.tif", "d.tif", "e.tif"]


def test_without_keep_going_the_first_failure_stops_the_batch(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.tif").write_bytes(b"junk")
    _stack(tmp_path / "in" / "b.tif")

    assert main(["denoise", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *TINY]) == 2
    out = capsys.readouterr().out
    assert "summary: 0 done, 0 skipped, 1 failed, 1 not run" in out
    assert list((tmp_path / "out").iterdir()) == []


def test_two_inputs_with_the_same_name_are_refused_before_compute(tmp_path, capsys, no_compute):
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        _stack(tmp_path / folder / "a.tif")

    code = main(["denoise", str(tmp_path / "x" / "a.tif"), str(tmp_path / "y" / "a.tif"), "-o", str(tmp_path / "o")])

    assert code == 2 and "two outputs are named" in _one_error_line(capsys)


def test_out_of_memory_is_one_line(stack, tmp_path, capsys, monkeypatch):
    import napari_mpid.core.engine as engine
    from napari_mpid.core.errors import OutOfMemory

    def oom(*args, **kwargs):
        raise OutOfMemory("out of memory on cpu (MemoryError); lower --memory-limit")
        yield

    monkeypatch.setattr(engine, "denoise_planes", oom)
    assert main(["denoise", str(stack), "-o", str(tmp_path / "out.tif"), *TINY]) == 2
    assert "out of memory on cpu" in _one_error_line(capsys)
    assert not list(tmp_path.glob("out*"))


def test_ome_zarr_output(stack, tmp_path, capsys):
    pytest.importorskip("ome_zarr")
    out = tmp_path / "out.ome.zarr"

    assert main(["denoise", str(stack), "-o", str(out), "--noise-map", str(tmp_path / "n.ome.zarr"), *TINY]) == 0
    image = read_image(out)
    assert image.axes == "ZYX" and image.data.shape == (2, 48, 48)
    assert image.scale == pytest.approx({"Z": 0.5, "Y": 0.13, "X": 0.13})
    assert image.metadata["param_iterations"] == 2 and image.metadata["intensity_scales"]
    np.testing.assert_allclose(read_image(tmp_path / "n.ome.zarr").data, read_image(stack).data - image.data, atol=1e-3)
    # An OME-Zarr is an input too (read plane by plane).
    assert main(["denoise", str(out), "-o", str(tmp_path / "again.tif"), *TINY]) == 0
    assert read_image(tmp_path / "again.tif").data.shape == (2, 48, 48)


# --- resume --------------------------------------------------------------------------------------------------


def _interrupt_after_first_plane(monkeypatch):
    from napari_mpid.batch import journal

    real_mark = journal.Journal.mark

    def mark_then_stop(self, numbers):
        real_mark(self, numbers)
        raise KeyboardInterrupt

    monkeypatch.setattr(journal.Journal, "mark", mark_then_stop)


def test_interrupted_run_resumes_to_the_same_output(tmp_path, capsys, monkeypatch):
    source = tmp_path / "stack.tif"
    _stack(source, planes=3)
    reference, out = tmp_path / "reference.tif", tmp_path / "out.tif"
    assert main(["denoise", str(source), "-o", str(reference), *TINY]) == 0

    with monkeypatch.context() as m:
        _interrupt_after_first_plane(m)
        assert main(["denoise", str(source), "-o", str(out), *TINY]) == 130
    assert not out.exists() and (tmp_path / "out.tif.journal").is_dir()
    assert "--resume" in capsys.readouterr().err

    # Without --resume the journal is not silently dropped; with other settings it is refused.
    assert main(["denoise", str(source), "-o", str(out), *TINY]) == 2
    assert "--resume" in _one_error_line(capsys)
    assert main(["denoise", str(source), "-o", str(out), "--resume", *TINY[:-1], "--beta", "0.5", "-q"]) == 2
    error = _one_error_line(capsys)
    assert "settings differ" in error and "beta" in error

    assert main(["denoise", str(source), "-o", str(out), "--resume", *TINY[:-1]]) == 0
    assert "1 planes from the journal" in capsys.readouterr().out
    np.testing.assert_array_equal(read_image(out).data, read_image(reference).data)
    assert not (tmp_path / "out.tif.journal").exists() and not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("first, then", [("absolute", "relative"), ("relative", "absolute")])
def test_resume_takes_the_same_output_spelled_relative_or_absolute(tmp_path, capsys, monkeypatch, first, then):
    """A run started with -o /abs/dir/out.tif was refused on resume with -o out.tif from /abs/dir."""
    (tmp_path / "data").mkdir()
    source = tmp_path / "data" / "stack.tif"
    _stack(source, planes=3)
    reference = tmp_path / "reference.tif"
    assert main(["denoise", str(source), "-o", str(reference), *TINY]) == 0
    monkeypatch.chdir(tmp_path / "data")
    spelled = {"absolute": str(tmp_path / "data" / "out.tif"), "relative": "out.tif"}

    with monkeypatch.context() as m:
        _interrupt_after_first_plane(m)
        assert main(["denoise", "stack.tif", "-o", spelled[first], *TINY]) == 130
    capsys.readouterr()
    if then == "relative":  # and from the parent folder too
        monkeypatch.chdir(tmp_path)
        spelled["relative"] = "data/out.tif"

    assert main(["denoise", str(source), "-o", spelled[then], "--resume", *TINY[:-1]]) == 0, capsys.readouterr().err
    assert "1 planes from the journal" in capsys.readouterr().out
    out = tmp_path / "data" / "out.tif"
    np.testing.assert_array_equal(read_image(out).data, read_image(reference).data)
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.tif", "stack.tif"]


def test_a_crash_between_the_renames_is_completed_by_resume(tmp_path, capsys, monkeypatch):
    import napari_mpid.batch.run as run
    import napari_mpid.files.write as writing

    source, out, noise = tmp_path / "stack.tif", tmp_path / "out.tif", tmp_path / "noise.tif"
    _stack(source)

    def rename_first_then_die(specs):
        os.replace(specs[0].partial, specs[0].path)
        raise KeyboardInterrupt  # as if killed between the two renames

    with monkeypatch.context() as m:
        m.setattr(run, "commit", rename_first_then_die)
        assert main(["denoise", str(source), "-o", str(out), "--noise-map", str(noise), *TINY]) == 130
    assert noise.exists() and not out.exists()
    capsys.readouterr()

    assert main(["denoise", str(source), "-o", str(out), "--noise-map", str(noise), "--resume", *TINY]) == 0
    assert out.exists() and noise.exists() and not list(tmp_path.glob("*.partial"))
    assert not (tmp_path / "out.tif.journal").exists()
    assert writing.partial_path(out).name == "out.tif.partial"


def test_a_changed_input_invalidates_the_journal(tmp_path, capsys, monkeypatch):
    source, out = tmp_path / "stack.tif", tmp_path / "out.tif"
    _stack(source, planes=3)
    with monkeypatch.context() as m:
        _interrupt_after_first_plane(m)
        assert main(["denoise", str(source), "-o", str(out), *TINY]) == 130
    capsys.readouterr()
    _stack(source, planes=3, seed=9)

    assert main(["denoise", str(source), "-o", str(out), "--resume", *TINY]) == 2
    assert "the input changed" in _one_error_line(capsys)
    assert main(["denoise", str(source), "-o", str(out), "--overwrite", *TINY]) == 0
    assert out.exists() and not (tmp_path / "out.tif.journal").exists()


@contextmanager
def _one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "napari_mpid.cli", "denoise", *args]


@pytest.mark.slow
def test_batch_killed_mid_plane_resumes_bit_for_bit(tmp_path):
    """SIGKILL after the first finished plane; --resume finishes; outputs equal an uninterrupted run."""
    (tmp_path / "in").mkdir()
    for name, seed in (("a", 1), ("b", 2)):
        _stack(tmp_path / "in" / f"{name}.tif", planes=3, seed=seed)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--iterations", "60", "--model", "random-init:1:single", "--seed", "4", "-q"]
    reference, out = tmp_path / "reference", tmp_path / "out"
    args = [str(tmp_path / "in"), "--noise-map"]
    with _one_thread():  # as in the subprocesses
        assert main(["denoise", *args, str(reference), "-o", str(reference), *common]) == 0

    log = out / "a.tif.journal" / "planes.log"
    proc = subprocess.Popen(_cli(*args, str(out), "-o", str(out), *common), env=env)
    try:
        deadline = time.monotonic() + 120
        while not (log.exists() and log.read_text().count("\n") >= 1):
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    finished = log.read_text().count("\n")
    assert 1 <= finished < 3 and not (out / "a.tif").exists()

    resumed = subprocess.run(
        _cli(*args, str(out), "-o", str(out), "--resume", *common), env=env, capture_output=True, text=True
    )

    assert resumed.returncode == 0, resumed.stderr
    assert f"({3 - finished} planes computed, {finished} from the journal" in resumed.stdout
    for name in ("a.tif", "a_noise_map.tif", "b.tif", "b_noise_map.tif"):
        assert np.array_equal(read_image(out / name).data, read_image(reference / name).data), name
    assert sorted(p.name for p in out.iterdir()) == ["a.tif", "a_noise_map.tif", "b.tif", "b_noise_map.tif"]


# --- Dask ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_local_dask_workers_give_the_serial_result(tmp_path, capsys):
    pytest.importorskip("distributed")
    (tmp_path / "in").mkdir()
    _stack(tmp_path / "in" / "a.tif", planes=3, seed=1)
    _stack(tmp_path / "in" / "b.tif", planes=2, seed=2)
    with _one_thread():  # as the workers
        assert main(["denoise", str(tmp_path / "in"), "-o", str(tmp_path / "serial"), *TINY]) == 0

    code = main(["denoise", str(tmp_path / "in"), "-o", str(tmp_path / "dask"), "--workers", "2", *TINY])

    assert code == 0, capsys.readouterr().err
    assert "summary: 2 done" in capsys.readouterr().out
    for name in ("a.tif", "b.tif"):
        assert np.array_equal(read_image(tmp_path / "dask" / name).data, read_image(tmp_path / "serial" / name).data)
