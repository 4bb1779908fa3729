"""Fixtures of the Qt tests: a tiny stack in a viewer and the docked widget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_mpid.core.cache import CACHE_ENV
from napari_mpid.core.engine import estimate as estimate_module
from napari_mpid.core.engine.timing import Calibration

# Tiny networks gain nothing from intra-op threads, and on a busy machine
# thread contention makes each iteration hundreds of times slower.
torch.set_num_threads(1)

#: Untrained single-channel network: needs no bundled checkpoint file.
TEST_MODEL = "random-init:1:single"
#: Generous: the first run of a process builds the network (about 1-2 s).
RUN_TIMEOUT_MS = 60_000


#: The speeds every widget test runs at (see ``measured_speed``): bf16 twice as fast as float32.
SPEEDS = {"step_overhead": 0.01, "mix_per_megapixel": 3.0, "stack_mix_per_megapixel": 9.0, "startup": 0.5}
MEASURED = "2026-03-04T05:06:07"


def fake_calibration(key: str) -> Calibration:
    """The calibration ``measured_speed`` answers for ``key``."""
    per_megapixel = 20.0 if "| bfloat16 |" in key else 40.0
    return Calibration(key, step_per_megapixel=per_megapixel, measured=MEASURED, **SPEEDS)


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch):
    """A cache folder of the test's own: no test reads or writes the user's calibrations."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


@pytest.fixture(autouse=True)
def measured_speed(monkeypatch):
    """Every device, precision and model counts as calibrated, at :data:`SPEEDS`.

    The widget would otherwise time real filling steps in a thread whenever
    its settings change (seconds on a busy machine) and its estimates would
    depend on this machine. Tests of the calibration itself undo this
    (``monkeypatch.setattr(estimate_module, "load_calibration", timing.load_calibration)``).
    """
    monkeypatch.setattr(estimate_module, "load_calibration", lambda key, cache=None: fake_calibration(key))


@pytest.fixture
def stack() -> np.ndarray:
    """A 2x48x48 uint16 Poisson stack brightening from 20 to 200 photons across X (the network needs 33x33).

    Shot noise that grows with the signal, as in fluorescence: a flat Poisson field has one
    noise level everywhere and reads so.
    """
    mean = np.broadcast_to(np.linspace(20.0, 200.0, 48), (2, 48, 48))
    return np.random.default_rng(0).poisson(mean).astype(np.uint16)


@pytest.fixture
def viewer_with_widget(make_napari_viewer, stack):
    """A viewer holding "cells" (scaled z-stack) with the widget docked through the manifest."""
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="cells", scale=(2.0, 0.5, 0.5), translate=(0, 10, 20), axis_labels=("z", "y", "x"))
    _, widget = viewer.window.add_plugin_dock_widget("napari-mpid", "Zero-shot denoise")
    widget.controls["model"].value = TEST_MODEL
    widget.controls["iterations"].value = 2
    widget.controls["device"].value = "cpu"
    return viewer, widget


def run_to_end(qtbot, widget, *, timeout: int = RUN_TIMEOUT_MS):
    """Start a run and wait for its worker to finish (signals connected before start)."""
    worker = widget.run(start=False)
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=timeout):
        worker.start()
    return worker
