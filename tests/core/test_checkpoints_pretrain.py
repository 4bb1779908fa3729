from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_mpid.core.model import checkpoints
from napari_mpid.core.model.checkpoints import CheckpointError, load_model, save_checkpoint
from napari_mpid.core.model.network import SkipNetwork
from napari_mpid.core.model.pretrain import PretrainConfig, Pretrainer, psnr_style_loss


def test_checkpoint_round_trip_with_metadata(tmp_path):
    net = SkipNetwork(1, False)
    sha = save_checkpoint(tmp_path / "m.pt", net, {"steps": 7, "data": {"folders": ["x"]}})
    raw = torch.load(tmp_path / "m.pt", weights_only=True)  # plain data only
    assert raw["metadata"]["steps"] == 7 and raw["metadata"]["architecture"]["channels"] == 1
    model = load_model(tmp_path / "m.pt")
    assert model.sha256 == sha
    for key, value in net.state_dict().items():
        assert torch.equal(model.state[key].cpu(), value)


def test_bundled_model_with_wrong_sha256_is_refused(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "fake.pt", SkipNetwork(1), {})
    monkeypatch.setattr(checkpoints, "bundled_model_path", lambda name: (tmp_path / "fake.pt", "0" * 64))
    with pytest.raises(CheckpointError, match="failed its SHA-256 check"):
        load_model("real-noise")


def test_unknown_names_and_corrupt_files_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="unknown bundled model"):
        load_model("no-such-model")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_model(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_model(bad)


def test_registry_entries_match_their_files():
    registry = checkpoints.bundled_models()
    for name, _entry in registry.items():
        path, sha = checkpoints.bundled_model_path(name)
        assert checkpoints.file_sha256(path) == sha, name
        assert path.stat().st_size < 4.5e6
        model = load_model(name)
        assert model.metadata["steps"] > 0 and model.metadata["crops_seen"] > 0
    assert json.dumps(registry)


def test_psnr_style_loss_ignores_visible_pixels():
    target = torch.zeros(2, 1, 8, 8)
    keep = torch.ones(2, 1, 8, 8)
    keep[:, :, :2] = 0
    pred = torch.zeros(2, 1, 8, 8)
    pred[:, :, 2:] = 1.0  # wrong only where visible
    assert float(psnr_style_loss(pred, target, keep)) == pytest.approx(-80.0, abs=1e-3)  # log10(1e-8) * 10
    pred[:, :, :2] = 0.5
    assert float(psnr_style_loss(pred, target, keep)) > -20


def _images():
    rng = np.random.default_rng(0)
    return [rng.random((48, 48)).astype(np.float32) for _ in range(25)]


def _config(**changes):
    base = dict(crop_size=40, batch_size=2, steps=6, validation_every=3, checkpoint_every=3, validation_crops=4)
    base.update(changes)
    return PretrainConfig(**base)


def test_masking_in_pretraining_follows_the_scheme():
    trainer = Pretrainer(_images(), _config(mask_ratio_min=0.8, mask_ratio_max=0.95))
    ratios = [trainer._mask_ratio(torch.Generator().manual_seed(i)) for i in range(200)]
    assert 0.8 <= min(ratios) and max(ratios) <= 0.95 and np.std(ratios) > 0.02
    _crops, keep = trainer.validation
    assert keep.shape[1] == 1 and abs(1 - float(keep.mean()) - 0.875) < 0.05


def test_resume_continues_exactly(tmp_path):
    full = Pretrainer(_images(), _config())
    list(full.run())
    half = Pretrainer(_images(), _config())
    list(half.run(until=3))
    half.save(tmp_path / "half.pt")
    resumed = Pretrainer(_images(), _config())
    resumed.resume(tmp_path / "half.pt")
    assert resumed.step == 3
    list(resumed.run())
    for key, value in full.network.state_dict().items():
        assert torch.equal(resumed.network.state_dict()[key], value), key
    assert resumed.crops_seen == full.crops_seen == 12


def test_weights_only_checkpoint_cannot_be_resumed(tmp_path):
    trainer = Pretrainer(_images(), _config())
    trainer.save(tmp_path / "w.pt", with_training_state=False)
    with pytest.raises(CheckpointError, match="no training state"):
        Pretrainer(_images(), _config()).resume(tmp_path / "w.pt")


def test_gray_option_feeds_a_3_channel_model_luminance_only():
    rng = np.random.default_rng(1)
    colour = [rng.random((48, 48, 3)).astype(np.float32) for _ in range(25)]
    trainer = Pretrainer(colour, _config(channels=3, gray=True))
    crops, _keep = trainer.validation
    assert crops.shape[1] == 3
    torch.testing.assert_close(crops[:, 0], crops[:, 1], rtol=0, atol=0)
    torch.testing.assert_close(crops[:, 0], crops[:, 2], rtol=0, atol=0)
    assert not torch.equal(Pretrainer(colour, _config(channels=3)).validation[0][:, 0], crops[:, 0])


def test_resume_refuses_a_different_gray_setting(tmp_path):
    trainer = Pretrainer(_images(), _config(channels=3, gray=True))
    trainer.save(tmp_path / "g.pt")
    with pytest.raises(CheckpointError, match="gray"):
        Pretrainer(_images(), _config(channels=3)).resume(tmp_path / "g.pt")


def test_cli_until_stops_mid_schedule_and_resume_finishes(tmp_path):
    from PIL import Image

    from napari_mpid.cli import main

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, image in enumerate(_images()[:6]):
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "run.pt"
    common = [str(folder), "-o", str(out), "--crop-size", "40", "--batch-size", "2", "--steps", "6", "-q"]
    common += ["--validate-every", "3", "--checkpoint-every", "3"]
    assert main(["pretrain", *common, "--until", "3"]) == 0
    assert torch.load(out, weights_only=True)["training"]["step"] == 3
    assert main(["pretrain", *common, "--resume"]) == 0
    assert torch.load(out, weights_only=True)["training"]["step"] == 6
