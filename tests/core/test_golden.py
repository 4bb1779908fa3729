"""The filling loop against golden vectors made with the authors' implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_mpid.core.checkpoints import load_model
from napari_mpid.core.filling import IterativeFiller

CASES = [
    ("golden_single_channel_mask85.npz", "imgnet_80_95_singlechannel_skip.pth"),
    ("golden_multi_channel_mask30.npz", "imgnet_30_multchannel_skip.pth"),
]


@pytest.mark.reference
@pytest.mark.parametrize("golden, checkpoint", CASES)
def test_filling_reproduces_the_reference_loop(anchors, golden, checkpoint):
    g = np.load(anchors / golden)
    model = load_model(anchors / "ckpts" / checkpoint, "cpu")
    filler = IterativeFiller(
        model.network,
        model.state,
        beta=float(g["beta"]),
        mask_ratio=float(g["mask_ratio"]),
        learning_rate=float(g["lr"]),
    )
    record: dict = {}
    masks = torch.from_numpy(g["keep_masks"])[:, None]  # (T, B=1, K, H, W)
    noisy = torch.from_numpy(g["noisy"])[None]
    for _ in filler.run(noisy, int(g["T"]), keep_masks=masks, record=record):
        pass

    first = np.abs(record["first_output"][0].numpy() - g["first_output"])
    final = np.abs(filler.running_average[0].numpy() - g["final_average"])
    assert first.max() <= 1e-4
    assert final.max() <= 5e-3
    assert final.mean() <= 5e-4
    np.testing.assert_array_equal(noisy[0].numpy(), g["noisy"])  # input untouched
