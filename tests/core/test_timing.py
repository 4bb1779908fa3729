"""Run-time calibration on this machine: measuring, caching, timing a plan, the running ETA."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_mpid.core import auto
from napari_mpid.core.cache import CACHE_ENV, user_cache_dir
from napari_mpid.core.engine import timing
from napari_mpid.core.engine.timing import (
    CACHE_FILE,
    Calibration,
    EtaTracker,
    calibrate,
    calibration_key,
    first_part,
    load_calibration,
    network_decision,
    run_seconds,
    save_calibration,
)
from napari_mpid.core.model.checkpoints import load_model
from napari_mpid.core.params import FillParams
from napari_mpid.core.run.plan import make_plan

CPU = torch.device("cpu")
MODEL = "random-init:1:single"


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL, CPU)


class ScriptedClock:
    """A clock that returns the given times in turn: what each measured interval lasts is chosen by the test."""

    def __init__(self, times: list[float]) -> None:
        self.times = list(times)
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.times.pop(0)


def clock_for(step: dict[int, float], warm: dict[int, float], steps: int, mix: tuple[float, float]) -> ScriptedClock:
    """Times for :func:`calibrate`: loading (0.5 s), per side warm-up and ``steps`` steps, then the two mixes."""
    times, now = [0.0, 0.5], 1.0
    for side in sorted(step):
        times += [now, now + warm[side], now + warm[side] + steps * step[side]]
        now += 10.0
    return ScriptedClock([*times, now, now + mix[0], now + mix[0] + mix[1]])


def test_calibration_fits_a_fixed_and_a_per_pixel_cost_from_two_plane_sizes(model, tmp_path, monkeypatch):
    monkeypatch.setattr(timing, "MIX_SIDE", 48)  # the mix really runs: keep it tiny
    overhead, rate = 0.01, 2.0  # seconds per step, seconds per megapixel and step
    step = {side: overhead + rate * side * side / 1e6 for side in (40, 48)}
    clock = clock_for(step, warm={40: 0.3, 48: 0.05}, steps=2, mix=(0.02, 0.06))

    cal = calibrate(MODEL, CPU, "float32", loaded=model, sides=(40, 48), steps=2, clock=clock, cache=tmp_path)

    assert clock.times == []  # every reading used, in the documented order
    assert cal.step_overhead == pytest.approx(overhead)
    assert cal.step_per_megapixel == pytest.approx(rate)
    assert cal.step_seconds(512 * 512) == pytest.approx(overhead + rate * 0.262144)
    megapixels = 48 * 48 / 1e6
    assert cal.mix_per_megapixel == pytest.approx(0.02 / megapixels)
    assert cal.stack_mix_per_megapixel == pytest.approx(0.06 / megapixels)
    # Loading, and what the second size's warm-up step cost beyond a settled step.
    assert cal.startup == pytest.approx(0.5 + 0.05 - step[48])
    assert cal.key == calibration_key(CPU, "float32", MODEL) and cal.notes == []
    assert load_calibration(cal.key, tmp_path) == cal


def test_a_busy_machine_times_fewer_steps(model, tmp_path, monkeypatch):
    monkeypatch.setattr(timing, "MIX_SIDE", 48)
    # A warm-up step of 5 s: the 1.5 s budget leaves room for one timed step per side, not four.
    times = [0.0, 0.1, 1.0, 6.0, 6.4, 10.0, 15.0, 15.6, 20.0, 20.1, 20.2]

    cal = calibrate(MODEL, CPU, "float32", loaded=model, sides=(40, 48), clock=ScriptedClock(times), cache=tmp_path)

    assert cal.steps == {"40": pytest.approx(0.4), "48": pytest.approx(0.6)}


def test_a_larger_size_measured_no_slower_counts_as_per_pixel_cost(model, tmp_path, monkeypatch):
    monkeypatch.setattr(timing, "MIX_SIDE", 48)
    clock = clock_for({40: 0.02, 48: 0.02}, warm={40: 0.02, 48: 0.02}, steps=2, mix=(0.01, 0.01))

    cal = calibrate(MODEL, CPU, "float32", loaded=model, sides=(40, 48), steps=2, clock=clock, save=False)

    # No negative rate: every second of the larger plane's step is per-pixel cost.
    assert cal.step_per_megapixel == pytest.approx(0.02 / (48 * 48 / 1e6))
    assert cal.step_seconds(48 * 48) == pytest.approx(0.02 + cal.step_overhead)
    assert not (tmp_path / CACHE_FILE).exists()


def test_calibration_leaves_the_callers_network_unchanged(model, tmp_path, monkeypatch):
    monkeypatch.setattr(timing, "MIX_SIDE", 48)
    before = {k: v.clone() for k, v in model.network.state_dict().items()}

    calibrate(MODEL, CPU, "float32", loaded=model, sides=(40, 48), steps=1, cache=tmp_path)

    after = model.network.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_the_cache_keeps_other_entries_and_ignores_old_versions_and_damaged_files(tmp_path):
    a = Calibration("device a", 0.01, 2.0, 3.0, 9.0, startup=0.4, measured="2026-01-01T10:00:00")
    b = Calibration("device b", 0.02, 4.0, 3.0, 9.0)
    save_calibration(a, tmp_path)
    path = save_calibration(b, tmp_path)

    assert path == tmp_path / CACHE_FILE
    assert load_calibration("device a", tmp_path) == a and load_calibration("device b", tmp_path) == b
    assert load_calibration("device c", tmp_path) is None
    data = json.loads(path.read_text())
    data["device a"]["version"] = 0
    path.write_text(json.dumps(data))
    assert load_calibration("device a", tmp_path) is None  # measured again by a newer version
    path.write_text("{not json")
    assert load_calibration("device b", tmp_path) is None
    assert save_calibration(a, tmp_path) == path and load_calibration("device a", tmp_path) == a


def test_the_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "here"))
    assert user_cache_dir() == tmp_path / "here"
    monkeypatch.delenv(CACHE_ENV)
    assert user_cache_dir().name.lower().startswith("napari-mpid") or "napari-mpid" in str(user_cache_dir())


def test_the_key_changes_with_precision_model_and_torch_and_names_the_cpu():
    key = calibration_key(CPU, "float32", "real-noise")
    assert key.startswith("cpu: ") and f"({torch.get_num_threads()} threads)" in key
    assert torch.__version__ in key and "| float32 |" in key and key.endswith("real-noise")
    assert calibration_key(CPU, "bfloat16", "real-noise") != key
    assert calibration_key(CPU, "float32", "pixel-independent") != key
    assert "graphs" not in key  # CUDA graphs are a GPU-only setting


def plan_for(model, shape, axes="ZYX", **changes):
    params = FillParams(**{"iterations": 10, "context": 0, **changes})
    return make_plan(shape, np.uint16, params, model, CPU, axes=axes)


CAL = Calibration("test", step_overhead=0.01, step_per_megapixel=2.0, mix_per_megapixel=3.0,
                  stack_mix_per_megapixel=9.0, startup=0.5)  # fmt: skip


def test_a_plan_is_timed_step_by_step_tile_by_tile(model):
    plan = plan_for(model, (2, 200, 200), tile_size=128, tile_overlap=16)
    tiles = [t.height * t.width for t in plan.tiles]
    assert len(tiles) > 1

    seconds = run_seconds(plan, CAL)

    assert seconds == pytest.approx(0.5 + 2 * 10 * sum(0.01 + 2.0 * p / 1e6 for p in tiles))


def test_the_auto_preset_adds_its_mix_and_without_the_network_costs_the_mix_alone(model):
    fixed = plan_for(model, (3, 64, 64))
    auto_plan = plan_for(model, (3, 64, 64), adaptive=True)
    mix = 3 * 64 * 64 / 1e6 * 3.0

    assert run_seconds(auto_plan, CAL) == pytest.approx(run_seconds(fixed, CAL) + mix)
    assert run_seconds(auto_plan, CAL, network=False) == pytest.approx(0.5 + mix)


def test_context_filling_fits_once_per_series_and_predicts_every_plane(model):
    plan = plan_for(model, (4, 64, 64), context=1, adaptive=True)
    assert plan.series == [[0, 1, 2, 3]]
    step = 0.01 + 2.0 * 64 * 64 / 1e6
    fit, predict = 10 * step, 4 * timing.CONTEXT_PASSES * step / 3
    mix = 4 * 64 * 64 / 1e6 * 9.0  # with neighbour planes

    assert run_seconds(plan, CAL) == pytest.approx(0.5 + fit + predict + mix)
    assert run_seconds(plan, CAL, network=False) == pytest.approx(0.5 + mix)


def test_a_static_scene_fills_one_mean_per_series(model):
    static = plan_for(model, (4, 64, 64), axes="TYX", static_scene=True)
    single = plan_for(model, (1, 64, 64), axes="TYX")
    assert run_seconds(static, CAL) == pytest.approx(run_seconds(single, CAL))


def test_the_network_decision_is_the_auto_modules_when_it_has_one(monkeypatch):
    seen = []

    def decide(part):
        seen.append(part.shape)
        return False, "blur mix only"

    monkeypatch.setattr(auto, "network_decision", decide, raising=False)
    assert network_decision(np.zeros((1, 8, 8))) == (False, "blur mix only") and seen == [(1, 8, 8)]
    monkeypatch.delattr(auto, "network_decision", raising=False)
    assert network_decision(np.zeros((1, 8, 8))) == (True, "")


def test_the_first_part_is_read_and_scaled_as_a_run_scales_it(model):
    stack = np.zeros((3, 40, 40), np.uint8)
    stack[0, :20] = 255
    stack[1] = 7  # only the first plane is read
    plan = make_plan(stack.shape, stack.dtype, FillParams(context=0), model, CPU, axes="ZYX")

    part = first_part(stack, plan)

    assert part.shape == (1, 40, 40) and part.min() == 0.0 and part.max() == 1.0  # 8 bits: /255
    assert first_part(stack, plan, 1) == pytest.approx(np.full((1, 40, 40), 7 / 255))


def test_the_eta_starts_from_the_estimate_and_follows_the_measured_rate():
    eta = EtaTracker(estimate=50.0, settle=0.05)

    assert eta.update(elapsed=8.0, fraction=0.01) == pytest.approx(49.5)  # start-up says nothing yet
    # 10 s for the next 10 %: 89 s left at that rate, 44.5 s by the estimate; weights 2/3 and 1/3.
    assert eta.update(elapsed=18.0, fraction=0.11) == pytest.approx(2 / 3 * 89 + 1 / 3 * 44.5)
    # Late in the run the measured rate dominates: 9 s at that rate, 4.5 s by the estimate.
    assert eta.update(elapsed=98.0, fraction=0.91) == pytest.approx(0.9 / 0.95 * 9 + 0.05 / 0.95 * 4.5)


def test_without_an_estimate_the_eta_leaves_the_start_up_out():
    assert EtaTracker(estimate=None).update(elapsed=5.0, fraction=0.0) is None
    eta = EtaTracker(estimate=None)
    eta.update(elapsed=10.0, fraction=0.01)  # the first step, start-up included
    # Elapsed / fraction would say 20 * 0.89 / 0.11 = 162 s; the rate since the first step says 89 s.
    assert eta.update(elapsed=20.0, fraction=0.11) == pytest.approx(89.0)
