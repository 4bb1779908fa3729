"""Planning records what a run will do: the parameters as resolved for this input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_mpid.core.model.checkpoints import load_model
from napari_mpid.core.params import FillParams
from napari_mpid.core.run.plan import make_plan


@pytest.mark.parametrize("planes, asked, used", [(3, 5, 2), (2, 3, 1), (3, 2, 2), (5, 1, 1)])
def test_context_is_resolved_to_the_neighbours_the_stack_has(tiny_model, planes, asked, used):
    model = load_model(tiny_model, "cpu")
    params = FillParams(model=tiny_model, context=asked, device="cpu", tile_size=64, tile_overlap=16)

    plan = make_plan((planes, 64, 64), np.uint16, params, model, torch.device("cpu"), axes="ZYX")

    assert plan.context == used and plan.params.context == used
    capped = [n for n in plan.notes if n.startswith(f"context {used}:")]
    assert bool(capped) == (asked != used)
    if capped:
        assert f"{planes} planes along Z" in capped[0] and f"({asked} asked)" in capped[0]
