"""A rough run time, shown before Run: the plan's filling work times a speed.

Where this machine's speed was measured (:func:`calibrate_for`, cached per
device, precision and model; see :mod:`napari_mpid.core.engine.timing`), the run's
plan is timed with it, start-up and the auto preset's mix included. With the
auto preset and the layer's data at hand, the first plane is asked whether
the network will run at all (:func:`~napari_mpid.core.engine.timing.network_decision`):
if not, the planes cost only the blur mix.

Otherwise the work is counted in megapixel-iterations (one filling
iteration, forward and backward pass, over one megapixel of tile) at the
speeds measured on a 2-core CPU and on one NVIDIA H100; other devices get no
figure until calibrated.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import torch

from napari_mpid.core.engine import CONTEXT_CROP, CONTEXT_PASSES
from napari_mpid.core.engine.timing import (
    MIX_FALLBACK,
    Calibration,
    EtaTracker,
    calibrate,
    calibration_key,
    decision_plane,
    load_calibration,
    network_decision,
    run_seconds,
    scaled_first_part,
)
from napari_mpid.core.model.checkpoints import LoadedModel
from napari_mpid.core.noise_profile import load_profile
from napari_mpid.core.run.plan import Plan

__all__ = [
    "CPU_SECONDS_PER_MEGAPIXEL",
    "CUDA_SECONDS",
    "EtaTracker",
    "calibrate_for",
    "calibration_for",
    "estimate_seconds",
    "estimate_text",
    "eta_tracker",
    "format_duration",
    "megapixel_iterations",
    "network_for",
    "table_seconds",
    "unit_iterations",
]

#: Seconds per filling iteration and megapixel on the CPU, by arithmetic: the
#: 1-channel network on 256x256 planes, 2 threads of an AMD EPYC with AVX-512
#: BF16 (docs/benchmarks.md, "Speed (CPU)"): 217.7 ms per iteration in bf16
#: (channels-last), 469.9 ms in float32 (NCHW), i.e. ~3.3 and ~7.2 s per
#: megapixel. More threads are faster, older CPUs slower: a rough figure.
CPU_SECONDS_PER_MEGAPIXEL = {"bfloat16": 0.2177 / 0.065536, "float32": 0.4699 / 0.065536}
#: On CUDA, (seconds per tile-iteration at least, seconds per megapixel-iteration)
#: by CUDA-graph mode, measured on one H100 80GB (benchmarks/results/gpu/
#: speed_h100_256_512.txt, one plane at a time): with graphs 3.4 ms per
#: iteration at 256x256 (launch-bound) and 6.9 ms at 512x512; eager about 30 ms
#: per iteration at both sizes. Smaller GPUs are slower, stacks of planes faster.
CUDA_SECONDS = {"auto": (0.0034, 0.0069 / 0.262144), "off": (0.030, 0.030 / 0.262144)}
#: A forward pass costs about a third of a training step (forward + backward).
_FORWARD_SHARE = 1 / 3


def megapixel_iterations(plan: Plan) -> float:
    """The filling work of ``plan``, in megapixel-iterations.

    Plane by plane (and stack mode): every plane, colour part and tile is
    fine-tuned for ``iterations`` steps (with ``static_scene``, one mean per
    series). Context filling: each series is
    fitted for ``iterations`` steps on crops of at most ``CONTEXT_CROP``
    pixels per side (of every pixel-shuffle sub-image), then each plane is
    predicted with ``CONTEXT_PASSES`` forward passes.
    """
    p = plan.params
    tile_pixels = sum(t.height * t.width for t in plan.tiles)
    if not plan.series or p.static_scene:
        filled = len(plan.series) if p.static_scene else len(plan.planes)  # static: one mean per series
        return filled * plan.parts * p.iterations * tile_pixels / 1e6
    f = p.pd_factor
    sub_h, sub_w = -(-plan.height // f), -(-plan.width // f)
    crop = min(CONTEXT_CROP, sub_h) * min(CONTEXT_CROP, sub_w) * f * f
    fit = len(plan.series) * p.iterations * crop
    predict = len(plan.planes) * CONTEXT_PASSES * _FORWARD_SHARE * plan.height * plan.width
    return (fit + predict) / 1e6


def unit_iterations(plan: Plan) -> float:
    """How many network steps ``plan`` runs: tile-iterations, forward passes counted as a third."""
    p = plan.params
    if not plan.series or p.static_scene:
        filled = len(plan.series) if p.static_scene else len(plan.planes)
        return filled * plan.parts * p.iterations * len(plan.tiles)
    return len(plan.series) * p.iterations + len(plan.planes) * CONTEXT_PASSES * _FORWARD_SHARE


def calibration_for(plan: Plan, device: torch.device) -> Calibration | None:
    """This machine's cached speed for the plan's device, precision, model and CUDA-graph mode, if measured."""
    p = plan.params
    return load_calibration(calibration_key(device, p.precision, p.model, p.cuda_graphs))


def calibrate_for(plan: Plan, device: torch.device, loaded: LoadedModel | None = None) -> Calibration:
    """Measure and cache the speed a run of ``plan`` on ``device`` would fill at (about a second on a CPU).

    Runs a few real filling steps: call it from a worker thread, not the
    GUI thread. ``loaded`` is the plan's model already loaded (it is copied,
    never changed).
    """
    p = plan.params
    return calibrate(p.model, device, p.precision, cuda_graphs=p.cuda_graphs, loaded=loaded)


#: The last answer of :func:`network_for` from data: (weak reference to the data, its key, the answer).
_last_decision: list[Any] = []


def network_for(plan: Plan, source: Any = None) -> tuple[bool, str]:
    """Whether the run of ``plan`` runs the network, and why ("" when nothing says otherwise).

    Only the auto preset may leave the network out: always with network
    "never" (or 0 iterations); with network "auto", where the noise of
    ``source`` (the layer's data, or the run's noise profile) says so, asked on the plane the engine asks
    first (:func:`~napari_mpid.core.engine.timing.decision_plane`; read and scaled
    once per data and normalisation, the answer is kept for the next call).
    Without ``source`` the network is assumed to run.
    """
    p = plan.params
    if not p.adaptive:
        return True, ""
    use = getattr(p, "network_use", getattr(p, "network", "auto"))
    if use == "never":
        return False, "network 'never': the mix of blurs alone"
    if use == "always" or source is None:
        return True, ""
    number = decision_plane(plan)
    key = (tuple(np.shape(source)), plan.axes, p.normalization, plan.planes[number], p.noise_profile)
    if _last_decision:
        ref, last_key, answer = _last_decision
        if last_key == key and ref() is source:
            return answer
    try:
        part, scale = scaled_first_part(source, plan, number)
        # With a noise profile the run decides on the profile's noise, and so does the estimate.
        profile = load_profile(p.noise_profile) if p.noise_profile is not None else None
        answer = network_decision(part, profile.for_plane(part, scale.low, scale.high) if profile else None)
    except Exception:  # an estimate must never stop the widget; assume the costlier run
        answer = (True, "")
    try:
        ref = weakref.ref(source)
    except TypeError:  # objects without weak references are asked again next time
        return answer
    _last_decision[:] = [ref, key, answer]
    return answer


def eta_tracker(plan: Plan, device: torch.device, source: Any = None) -> EtaTracker:
    """An :class:`~napari_mpid.core.engine.timing.EtaTracker` for a run, started from this module's estimate."""
    return EtaTracker(estimate_seconds(plan, device, source=source))


def estimate_seconds(
    plan: Plan,
    device: torch.device,
    *,
    calibration: Calibration | None = None,
    source: Any = None,
) -> float | None:
    """Rough seconds the run of ``plan`` takes on ``device``; None where no speed is known (an uncalibrated MPS).

    ``calibration`` defaults to this machine's cached one (:func:`calibration_for`).
    With ``source`` (the data to denoise) and the auto preset, a run whose
    first plane does not need the network is timed as the blur mix alone.
    """
    network = network_for(plan, source)[0]
    calibration = calibration or calibration_for(plan, device)
    if calibration is not None:
        return run_seconds(plan, calibration, network=network)
    if not network:
        rate = MIX_FALLBACK[1] if plan.series and not plan.params.static_scene else MIX_FALLBACK[0]
        filled = len(plan.series) if plan.params.static_scene else len(plan.planes)
        return filled * plan.parts * plan.height * plan.width / 1e6 * rate
    return table_seconds(plan, device)


def table_seconds(plan: Plan, device: torch.device) -> float | None:
    """The filling time of ``plan`` at the fixed speeds measured elsewhere (2-core CPU, H100); None for others."""
    if device.type == "cuda":
        floor, per_megapixel = CUDA_SECONDS.get(plan.params.cuda_graphs, CUDA_SECONDS["auto"])
        return max(unit_iterations(plan) * floor, megapixel_iterations(plan) * per_megapixel)
    if device.type != "cpu":
        return None
    rate = CPU_SECONDS_PER_MEGAPIXEL.get(plan.params.precision, CPU_SECONDS_PER_MEGAPIXEL["float32"])
    return megapixel_iterations(plan) * rate


def format_duration(seconds: float) -> str:
    """A duration for people: "40 s", "12 min", "3.5 h"."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def estimate_text(
    plan: Plan,
    device: torch.device,
    *,
    calibration: Calibration | None = None,
    source: Any = None,
) -> str:
    """The widget's estimate line, e.g. "rough estimate: ~12 min on cpu (float32), at this machine's speed (...)".

    With the auto preset, planes filled alone are counted at all their
    iterations, which they may not need: the line says "at most". When the
    first plane of ``source`` does not need the network, the line says so and
    counts the mix only.

    Uncalibrated (:func:`calibrate_for` never ran for this device, precision
    and model), the figure comes from speeds measured elsewhere, and only the
    filling is counted: loading the model and the first iterations (which
    set up the CPU kernels) add seconds that matter for small inputs only.
    """
    runs, why = network_for(plan, source)
    calibration = calibration or calibration_for(plan, device)
    seconds = estimate_seconds(plan, device, calibration=calibration, source=source)
    where = f"{device} ({plan.params.precision})"
    if seconds is None:
        return f"rough estimate: none for {where}: its speed was not measured yet"
    if not runs:
        measured = "this machine's measured speed" if calibration is not None else "a 2-core CPU's speed"
        return (
            f"rough estimate: ~{format_duration(seconds)} on {where}, at {measured}; the network does not run ({why})"
        )
    # The auto preset stops a plane's filling once its held-out score stops improving (on FMD
    # crops after 72-200 of its 200 iterations), and abandons a filling or a stack's context fit
    # that earns nothing halfway (ABANDON_AT): its T iterations are the most it runs.
    p = plan.params
    stops = not plan.series or p.static_scene or getattr(p, "network_use", "auto") == "auto"
    bound = "at most " if p.adaptive and stops else "~"
    if calibration is not None:
        day = calibration.measured.split("T")[0]
        return f"rough estimate: {bound}{format_duration(seconds)} on {where}, at this machine's speed (measured {day})"
    speed = "H100 speed" if device.type == "cuda" else "2-core CPU speed"
    return f"rough estimate: {bound}{format_duration(seconds)} of filling on {where} + start-up ({speed})"
