"""Files that are not checkpoints get one plain message naming them (nothing about torch.load's options)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_mpid.core.model.checkpoints import CheckpointError, load_model


class _Pickled:
    """A Python object: torch.save pickles it, torch.load(weights_only=True) refuses it."""


def _text(path):
    path.write_text("not a model")


def _pickled_object(path):
    torch.save({"model": _Pickled()}, path)


def _tensor(path):
    torch.save(torch.zeros(3), path)


def _numpy(path):
    with open(path, "wb") as fh:
        np.save(fh, np.zeros(3))


def _foreign_dict(path):
    torch.save({"weights": torch.zeros(2)}, path)


def _our_format_without_weights(path):
    torch.save({"format": "napari-mpid", "state_dict": {"w": torch.zeros(1)}}, path)


@pytest.mark.parametrize("make", [_text, _pickled_object, _tensor, _numpy, _foreign_dict, _our_format_without_weights])
def test_a_file_that_is_not_a_checkpoint_is_named_and_called_so(tmp_path, make):
    path = tmp_path / "model.pt"
    make(path)

    with pytest.raises(CheckpointError) as error:
        load_model(path)

    message = str(error.value)
    assert str(path) in message and "not a napari-mpid or MPI checkpoint" in message
    assert "weights_only" not in message and len(message.splitlines()) == 1
