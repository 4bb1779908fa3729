from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from napari_mpid.cli import main
from napari_mpid.files import read_image, write_tiff

from ..tiff_files import header_only_huge_tiff


@pytest.fixture
def zyx_stack(tmp_path):
    rng = np.random.default_rng(0)
    data = (rng.poisson(40, (3, 48, 56)) + 100).astype(np.uint16)
    path = tmp_path / "stack.tif"
    write_tiff(path, data, "ZYX", {"Z": 0.5, "Y": 0.13, "X": 0.13}, "µm")
    return path, data


def test_denoise_writes_stack_and_noise_map_with_axes_and_pixel_size(zyx_stack, tmp_path, tiny_model, capsys):
    path, data = zyx_stack
    out, noise = tmp_path / "out.tif", tmp_path / "noise.tif"
    code = main(
        [
            "denoise",
            str(path),
            "-o",
            str(out),
            "--noise-map",
            str(noise),
            "--iterations",
            "2",
            "--model",
            tiny_model,
            "--seed",
            "3",
            "-q",
        ]
    )
    assert code == 0, capsys.readouterr().err
    for written in (out, noise):
        image = read_image(written)
        assert image.data.shape == data.shape and image.axes == "ZYX"
        assert image.scale["X"] == pytest.approx(0.13, rel=1e-4) and image.scale["Z"] == pytest.approx(0.5)
        assert image.data.dtype == np.float32
    denoised, noise_map = read_image(out).data, read_image(noise).data
    np.testing.assert_allclose(noise_map, data.astype(np.float32) - denoised, atol=1e-3)
    assert "model_sha256" in tifffile.TiffFile(out).imagej_metadata.get("Info", "")


def test_static_scene_writes_the_denoised_mean_of_the_exposures_to_every_plane(zyx_stack, tmp_path, tiny_model):
    path, data = zyx_stack
    out = tmp_path / "static.tif"
    args = ["denoise", str(path), "-o", str(out), "--iterations", "2", "--model", tiny_model, "-q"]
    assert main([*args, "--static-scene"]) == 0
    denoised = read_image(out).data
    assert denoised.shape == data.shape
    np.testing.assert_array_equal(denoised[0], denoised[2])
    assert "static scene" in tifffile.TiffFile(out).imagej_metadata.get("Info", "")


def test_metadata_records_the_context_that_was_used(zyx_stack, tmp_path, tiny_model):
    """--context 5 on 3 planes uses 2 neighbours per side (all there are); the metadata said 5."""
    path, _ = zyx_stack
    out = tmp_path / "context.tif"

    assert (
        main(["denoise", str(path), "-o", str(out), "--context", "5", "--iterations", "2", "--model", tiny_model, "-q"])
        == 0
    )

    metadata = read_image(out).metadata
    assert metadata["param_context"] == 2
    assert any(note.startswith("context 2: 3 planes along Z") for note in metadata["notes"])


def test_denoise_can_keep_the_input_dtype(zyx_stack, tmp_path, tiny_model):
    path, _ = zyx_stack
    out = tmp_path / "out16.tif"
    assert (
        main(
            ["denoise", str(path), "-o", str(out), "--iterations", "1", "--model", tiny_model, "--dtype", "input", "-q"]
        )
        == 0
    )
    assert read_image(out).data.dtype == np.uint16


def _nan_tiff(tmp_path):
    data = np.ones((64, 64), np.float32)
    data[3, 3] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", data)
    return tmp_path / "nan.tif"


@pytest.mark.parametrize(
    "make_input, extra, message",
    [
        (lambda p: p / "missing.tif", [], "no such file"),
        (lambda p: (p / "junk.tif").write_bytes(b"junk") and p / "junk.tif", [], "cannot read image"),
        (_nan_tiff, [], "NaN or infinite"),
        (lambda p: tifffile.imwrite(p / "small.tif", np.ones((16, 16), np.uint8)) or p / "small.tif", [], "too small"),
        (header_only_huge_tiff, [], "huge.tif: the file is truncated or damaged (its header declares 60000x60000"),
        (
            lambda p: tifffile.imwrite(p / "ok.tif", np.ones((64, 64), np.uint8)) or p / "ok.tif",
            ["--axes", "ZYX"],
            "3 letters but the array has 2",
        ),
        (
            lambda p: tifffile.imwrite(p / "ok2.tif", np.ones((64, 64), np.uint8)) or p / "ok2.tif",
            ["--mask-ratio", "1.5"],
            "mask_ratio",
        ),
        (
            lambda p: tifffile.imwrite(p / "ok3.tif", np.ones((64, 64), np.uint8)) or p / "ok3.tif",
            ["--model", "nope"],
            "unknown bundled model",
        ),
        (
            lambda p: tifffile.imwrite(p / "one.tif", np.ones((64, 64), np.uint8)) or p / "one.tif",
            ["--static-scene"],
            "static_scene averages repeated exposures along a stack axis",
        ),
        (
            lambda p: tifffile.imwrite(p / "two.tif", np.ones((2, 64, 64), np.uint8)) or p / "two.tif",
            ["--static-scene", "--context", "1"],
            "takes no context",
        ),
    ],
)
def test_bad_input_gives_one_line_error_and_no_output(tmp_path, capsys, tiny_model, make_input, extra, message):
    source = make_input(tmp_path)
    out = tmp_path / "result.tif"
    args = ["denoise", str(source), "-o", str(out), "--iterations", "1", "-q"]
    if "--model" not in extra:
        args += ["--model", tiny_model]
    code = main(args + extra)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("napari-mpid: error:") and message in err and len(err.splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


class _Pickled:
    """A Python object in a model file."""


def test_a_model_file_that_is_not_a_checkpoint_is_one_plain_line(tmp_path, capsys):
    model, image, out = tmp_path / "model.pt", tmp_path / "in.tif", tmp_path / "out.tif"
    torch.save({"model": _Pickled()}, model)  # a pickled object: torch.load(weights_only=True) refuses it
    tifffile.imwrite(image, np.ones((64, 64), np.uint8))

    code = main(["denoise", str(image), "-o", str(out), "--model", str(model), "-q"])

    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err == (
        f"napari-mpid: error: cannot read checkpoint {model}: it is not a napari-mpid or MPI checkpoint "
        "(those are PyTorch files of tensors and plain values)"
    )
    assert not out.exists()


def test_demo_reports_psnr(tmp_path, tiny_model, capsys):
    assert (
        main(
            [
                "demo",
                "--planes",
                "1",
                "--size",
                "64",
                "--iterations",
                "2",
                "--model",
                tiny_model,
                "-q",
                "-o",
                str(tmp_path / "demo"),
            ]
        )
        == 0
    )
    assert '"psnr_denoised"' in capsys.readouterr().out
    assert (tmp_path / "demo" / "sample_denoised.tif").exists()


def test_console_script_is_installed():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "napari_mpid.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "napari-mpid" in out.stdout


def test_pretrain_command_resumes(tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(21):
        Image.fromarray((rng.random((48, 48)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    ckpt = tmp_path / "m.pt"
    common = [
        "pretrain",
        str(folder),
        "-o",
        str(ckpt),
        "--crop-size",
        "40",
        "--batch-size",
        "2",
        "--steps",
        "4",
        "--validate-every",
        "2",
        "--checkpoint-every",
        "2",
        "--device",
        "cpu",
        "-q",
    ]
    assert main([*common, "--time-limit", "0"]) == 0  # stops after one step
    assert main([*common, "--resume"]) == 0
    import torch

    raw = torch.load(ckpt, weights_only=True)
    assert raw["training"]["step"] == 4 and raw["metadata"]["crops_seen"] == 8
    assert raw["metadata"]["data"]["folders"][0]["images"] == 21
    assert (tmp_path / "m.weights.pt").exists()


def test_the_summary_says_in_plain_words_what_produced_each_result(tmp_path, tiny_model, capsys):
    # Shot noise over bright blobs: the auto preset skips the network. Gaussian noise of one
    # level over texture: it fills with the network. Each file's summary says which.
    rng = np.random.default_rng(5)
    y, x = np.mgrid[:64, :64]
    blobs = 0.05 + sum(0.6 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 20.0) for cy, cx in rng.uniform(8, 56, (8, 2)))
    shot = (rng.poisson(blobs * 60) * 10 + 100).astype(np.uint16)
    texture = (np.sin(x / 2.0) * np.cos(y / 3.0) * 0.2 + 0.5 + rng.normal(0, 0.08, (64, 64))).astype(np.float32)
    (tmp_path / "in").mkdir()
    write_tiff(tmp_path / "in" / "shot.tif", shot, "YX")
    write_tiff(tmp_path / "in" / "texture.tif", texture, "YX")

    code = main(["denoise", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--iterations", "3", "--model",
                 tiny_model, "-q"])  # fmt: skip
    out = capsys.readouterr().out
    # Asked to keep the network, whose filling (tiny, untrained) the run above abandons.
    kept = main(["denoise", str(tmp_path / "in" / "texture.tif"), "-o", str(tmp_path / "kept"), "--iterations",
                 "3", "--model", tiny_model, "--network", "always", "-q"])  # fmt: skip
    kept_out = capsys.readouterr().out

    assert code == 0 and kept == 0
    lines = out.splitlines()

    def summary_of(name: str) -> str:
        done = next(i for i, line in enumerate(lines) if line.strip().startswith("done") and f"{name} ->" in line)
        return lines[done + 1].strip()

    shot_line, texture_line = summary_of("shot.tif"), summary_of("texture.tif")
    assert "without the network: " in shot_line and "network" not in shot_line.split(":")[1]
    assert "without the network (tried on 1 plane, abandoned: it earned nothing): " in texture_line
    assert "with the network on every plane: network" in kept_out
    assert "% of the intensity range before" in shot_line


def test_a_noise_profile_from_repeated_exposures_feeds_denoise(tmp_path, capsys):
    rng = np.random.default_rng(2)
    field = np.broadcast_to(np.linspace(50.0, 400.0, 64), (64, 64))
    exposures = tmp_path / "exposures.tif"
    write_tiff(exposures, rng.poisson(field, (3, 64, 64)).astype(np.uint16), "TYX")
    profile = tmp_path / "scope.json"

    assert main(["noise-profile", str(exposures), "-o", str(profile)]) == 0
    assert f"wrote {profile}: noise variance " in capsys.readouterr().out
    # Poisson counts: the variance is the intensity.
    assert json.loads(profile.read_text())["gain"] == pytest.approx(1.0, abs=0.15)
    assert main(["noise-profile", str(exposures), "-o", str(profile)]) == 2
    assert "exists (--overwrite replaces it)" in capsys.readouterr().err

    image, out = tmp_path / "image.tif", tmp_path / "out.tif"
    write_tiff(image, rng.poisson(field).astype(np.uint16), "YX")
    code = main(["denoise", str(image), "-o", str(out), "--noise-profile", str(profile), "--iterations", "0", "-q"])
    assert code == 0
    assert any(n.startswith("noise from the profile") for n in read_image(out).metadata["notes"])


def test_a_noise_profile_is_refused_for_channels_and_with_a_paper_preset(tmp_path, capsys):
    rng = np.random.default_rng(3)
    stack = tmp_path / "channels.tif"
    write_tiff(stack, rng.poisson(100, (2, 2, 48, 48)).astype(np.uint16), "TCYX")
    assert main(["noise-profile", str(stack), "-o", str(tmp_path / "p.json")]) == 2
    assert "one channel at a time" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()

    image = tmp_path / "image.tif"
    write_tiff(image, rng.poisson(100, (48, 48)).astype(np.uint16), "YX")
    code = main(["denoise", str(image), "-o", str(tmp_path / "o.tif"), "--preset", "fast", "--noise-profile", "x"])
    assert code == 2 and "auto preset" in capsys.readouterr().err
