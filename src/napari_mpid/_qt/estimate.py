"""A rough run time, shown before Run: the plan's filling work times a measured speed.

The work of a run is counted in megapixel-iterations: one filling iteration
(forward and backward pass) over one megapixel of tile. Its cost was
measured on a 2-core CPU and on one NVIDIA H100 (the only GPU measured so
far); other devices get no figure.
"""

from __future__ import annotations

import torch

from ..core.engine import CONTEXT_CROP, CONTEXT_PASSES
from ..core.plan import Plan

__all__ = [
    "CPU_SECONDS_PER_MEGAPIXEL",
    "CUDA_SECONDS",
    "estimate_seconds",
    "estimate_text",
    "format_duration",
    "megapixel_iterations",
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


def estimate_seconds(plan: Plan, device: torch.device) -> float | None:
    """Rough seconds the run of ``plan`` takes on ``device``; None where no speed was measured (MPS)."""
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


def estimate_text(plan: Plan, device: torch.device) -> str:
    """The widget's estimate line, e.g. "rough estimate: ~12 min of filling on cpu (bfloat16) ...".

    With the auto preset, planes filled alone are counted at all their
    iterations, which they may not need: the line says "at most".

    Only the filling is counted: loading the model and the first iterations
    (which set up the CPU kernels) add seconds that matter for small inputs only.
    """
    seconds = estimate_seconds(plan, device)
    where = f"{device} ({plan.params.precision})"
    if seconds is None:
        return f"rough estimate: none for {where}: its speed was not measured yet"
    speed = "H100 speed" if device.type == "cuda" else "2-core CPU speed"
    # The auto preset stops a plane's filling once its held-out score stops improving (on FMD
    # crops after 72-200 of its 200 iterations): its T iterations are the most it runs.
    bound = "at most " if plan.params.adaptive and (not plan.series or plan.params.static_scene) else "~"
    return f"rough estimate: {bound}{format_duration(seconds)} of filling on {where} + start-up ({speed})"
