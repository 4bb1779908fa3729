"""The widget's rough run-time estimate: this machine's calibration, else speeds measured elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_mpid.core import auto
from napari_mpid.core.cache import CACHE_ENV
from napari_mpid.core.engine import estimate as estimate_module
from napari_mpid.core.engine.estimate import (
    CUDA_SECONDS,
    calibrate_for,
    calibration_for,
    estimate_seconds,
    estimate_text,
    eta_tracker,
    network_for,
    unit_iterations,
)
from napari_mpid.core.engine.timing import Calibration, calibration_key, run_seconds, save_calibration
from napari_mpid.core.model.checkpoints import load_model
from napari_mpid.core.params import FillParams
from napari_mpid.core.run.devices import resolve_precision
from napari_mpid.core.run.plan import make_plan


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    """No calibration from the user's own cache: every test starts uncalibrated."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def model():
    return load_model("random-init:1:single", torch.device("cpu"))


def plan_for(model, shape, **changes):
    params = FillParams(iterations=100, context=0, tile_size=256, **changes)
    return make_plan(shape, np.uint16, params, model, torch.device("cpu"), axes="ZYX")


def test_cuda_small_planes_are_launch_bound_and_large_planes_pixel_bound(model):
    cuda = torch.device("cuda")
    small = plan_for(model, (2, 64, 64))
    large = plan_for(model, (2, 512, 512))  # tiled at 256
    floor, per_megapixel = CUDA_SECONDS["auto"]

    assert estimate_seconds(small, cuda) == pytest.approx(2 * 100 * floor)
    tiles = len(large.tiles)
    assert unit_iterations(large) == 2 * 100 * tiles
    expected = max(
        2 * 100 * tiles * floor, 2 * 100 * sum(t.height * t.width for t in large.tiles) / 1e6 * per_megapixel
    )
    assert estimate_seconds(large, cuda) == pytest.approx(expected)
    # Eager iterations cost about 9x more than replayed CUDA graphs.
    assert estimate_seconds(plan_for(model, (2, 64, 64), cuda_graphs="off"), cuda) > 5 * estimate_seconds(small, cuda)
    assert "H100 speed" in estimate_text(small, cuda)


def test_context_filling_under_the_auto_preset_is_an_upper_bound_unless_the_network_is_forced(model):
    # The stack's network may be abandoned halfway (ABANDON_AT); "always" fits to the end.
    cpu = torch.device("cpu")

    def context_plan(network: str):
        params = FillParams(iterations=100, context=1, adaptive=True, network=network)
        return make_plan((4, 64, 64), np.uint16, params, model, cpu, axes="ZYX")

    assert context_plan("auto").series
    assert estimate_text(context_plan("auto"), cpu).startswith("rough estimate: at most")
    assert estimate_text(context_plan("always"), cpu).startswith("rough estimate: ~")


def test_devices_without_a_measured_speed_get_no_figure(model):
    plan = plan_for(model, (2, 64, 64))
    assert estimate_seconds(plan, torch.device("mps")) is None
    assert "not measured" in estimate_text(plan, torch.device("mps"))
    assert estimate_seconds(plan, torch.device("cpu")) > estimate_seconds(plan, torch.device("cuda"))


def test_the_auto_preset_is_an_upper_bound_and_a_static_scene_fills_one_plane_per_series(model):
    cpu = torch.device("cpu")
    fixed = plan_for(model, (4, 64, 64))
    assert estimate_text(fixed, cpu).startswith("rough estimate: ~")
    assert estimate_text(plan_for(model, (4, 64, 64), adaptive=True), cpu).startswith("rough estimate: at most")
    static = make_plan((4, 64, 64), np.uint16, FillParams(iterations=100, static_scene=True), model, cpu, axes="TYX")
    assert unit_iterations(static) == 100 and estimate_seconds(static, cpu) == pytest.approx(
        estimate_seconds(fixed, cpu) / 4
    )


CPU = torch.device("cpu")


def calibrated(plan, device=CPU, **speeds) -> Calibration:
    p = plan.params
    values = {"step_overhead": 0.01, "step_per_megapixel": 40.0, "mix_per_megapixel": 3.0}
    values.update(stack_mix_per_megapixel=9.0, startup=0.5, measured="2026-03-04T05:06:07", **speeds)
    cal = Calibration(calibration_key(device, p.precision, p.model, p.cuda_graphs), **values)
    save_calibration(cal)
    return cal


def test_a_cached_calibration_replaces_the_fixed_speeds_and_says_when_it_was_measured(model):
    cpu = torch.device("cpu")
    plan = plan_for(model, (4, 256, 256))
    table = estimate_seconds(plan, cpu)
    assert calibration_for(plan, cpu) is None

    cal = calibrated(plan)

    assert calibration_for(plan, cpu) == cal
    assert estimate_seconds(plan, cpu) == pytest.approx(run_seconds(plan, cal)) != pytest.approx(table)
    text = estimate_text(plan, cpu)
    assert text.startswith("rough estimate: ~") and "this machine's speed (measured 2026-03-04)" in text
    # Another precision or model was not measured: the fixed speeds again. "auto" is bf16
    # on CPUs with native bf16 instructions (AVX-512 BF16), float32 elsewhere.
    other = "float32" if resolve_precision("auto", cpu) == "bfloat16" else "bfloat16"
    assert estimate_seconds(plan_for(model, (4, 256, 256), precision=other), cpu) != pytest.approx(
        estimate_seconds(plan, cpu)
    )


def test_a_calibrated_mps_gets_a_figure(model):
    mps = torch.device("mps")
    plan = plan_for(model, (2, 64, 64))
    calibrated(plan, mps)
    assert estimate_seconds(plan, mps) is not None and "not measured" not in estimate_text(plan, mps)


def test_an_auto_run_whose_first_plane_needs_no_network_is_timed_as_the_mix(model, monkeypatch):
    cpu = torch.device("cpu")
    data = np.random.default_rng(0).poisson(20, (3, 64, 64)).astype(np.uint16)
    plan = plan_for(model, data.shape, adaptive=True)
    cal = calibrated(plan)
    asked = []

    def decide(part):
        asked.append(part.shape)
        return False, "noise that grows with the signal (shot noise): mix without the network"

    monkeypatch.setattr(auto, "network_decision", decide, raising=False)

    assert estimate_seconds(plan, cpu, source=data) == pytest.approx(run_seconds(plan, cal, network=False))
    text = estimate_text(plan, cpu, source=data)
    assert text.startswith("rough estimate: ~") and "the network does not run (noise that grows" in text
    assert asked == [(1, 64, 64)]  # asked once, on the first plane, and remembered for the same data
    # Without the data, or with fixed settings, the network is counted.
    assert estimate_seconds(plan, cpu) == pytest.approx(run_seconds(plan, cal))
    assert network_for(plan_for(model, data.shape), data) == (True, "") and len(asked) == 1


def test_without_a_decision_in_the_auto_module_the_network_is_assumed_to_run(model, monkeypatch):
    monkeypatch.delattr(auto, "network_decision", raising=False)
    data = np.zeros((2, 48, 48), np.uint16)
    plan = plan_for(model, data.shape, adaptive=True)
    assert network_for(plan, data) == (True, "")
    assert estimate_text(plan, torch.device("cpu"), source=data).startswith("rough estimate: at most")


def test_calibrate_for_measures_the_plans_model_precision_and_graph_mode(model, monkeypatch):
    calls = []
    monkeypatch.setattr(estimate_module, "calibrate", lambda *args, **kwargs: calls.append((args, kwargs)))
    plan = plan_for(model, (2, 64, 64), precision="float32", cuda_graphs="off")

    calibrate_for(plan, torch.device("cpu"), loaded=model)

    [(args, kwargs)] = calls
    assert args == ("real-noise", torch.device("cpu"), "float32")  # the plan's model spec
    assert kwargs == {"cuda_graphs": "off", "loaded": model}


def test_the_eta_of_a_run_starts_from_its_estimate(model):
    plan = plan_for(model, (2, 64, 64))
    cal = calibrated(plan)
    tracker = eta_tracker(plan, torch.device("cpu"))
    assert tracker.estimate == pytest.approx(run_seconds(plan, cal))
    assert tracker.update(elapsed=1.0, fraction=0.5) == pytest.approx(run_seconds(plan, cal) / 2)
