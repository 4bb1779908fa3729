"""Run times measured on this machine: a calibration of the real filling, cached per device.

A filling step (mask draw, forward and backward pass, Adam step, running
average) over a batch of ``p`` pixels costs about ``overhead + rate * p``
seconds: a fixed part (kernel launches, Python, small-tensor work) that
dominates small planes on GPUs, and a part that grows with the pixels. How
large each is depends on the processor (threads, AVX-512, bf16 support),
the GPU, the precision and the network, so :func:`calibrate` measures them
here: after warm-up, a few steps of :class:`~napari_mpid.core.fill.single.IterativeFiller`
on two plane sizes, with the run's model, precision and CUDA-graph mode,
then the auto preset's noise estimate and blur mix on a small plane.
The result is a :class:`Calibration`, cached as JSON in the user cache
folder (:func:`~napari_mpid.core.cache.user_cache_dir`) under a key of the
device's name, the torch version, the precision, the model and the
CUDA-graph mode: a new GPU, torch or model gets a new calibration.

:func:`run_seconds` turns a :class:`~napari_mpid.core.run.plan.Plan` and a
calibration into seconds; :func:`network_decision` says whether the auto
preset will run the network at all on a plane (when it does not, a plane
costs only the blur mix); :class:`EtaTracker` refines the time left from
the rates measured during a run.

Nothing here runs at import; :func:`calibrate` takes an injectable clock
so that tests are fast and deterministic.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_mpid.core.cache import user_cache_dir
from napari_mpid.core.engine import CONTEXT_CROP, CONTEXT_PASSES
from napari_mpid.core.fill.graphs import GRAPH_WARMUP, cuda_graphs_supported
from napari_mpid.core.fill.settings import FillSettings
from napari_mpid.core.fill.single import IterativeFiller
from napari_mpid.core.model.checkpoints import LoadedModel, load_model
from napari_mpid.core.run.assemble import split_parts
from napari_mpid.core.run.devices import resolve_precision
from napari_mpid.core.run.normalization import IntensityScale
from napari_mpid.core.run.plan import Plan, model_mask_ratio
from napari_mpid.core.run.scales import channel_of, fit_scales

__all__ = [
    "CACHE_FILE",
    "CALIBRATION_BUDGET",
    "CALIBRATION_SIDES",
    "CALIBRATION_STEPS",
    "Calibration",
    "EtaTracker",
    "calibrate",
    "calibration_key",
    "decision_plane",
    "device_description",
    "first_part",
    "load_calibration",
    "network_decision",
    "run_seconds",
    "save_calibration",
    "scaled_first_part",
]

#: The cache file, in :func:`~napari_mpid.core.cache.user_cache_dir`.
CACHE_FILE = "timing.json"
#: Bumped when the measurement changes, so that older entries are measured again.
CALIBRATION_VERSION = 1
#: Plane sides timed by :func:`calibrate`, by device type. On a CPU the cost is nearly
#: proportional to the pixels and small planes keep the calibration near a second; on GPUs
#: the small side is launch-bound and the large one pixel-bound, so both terms are seen.
CALIBRATION_SIDES = {"cpu": (64, 128), "cuda": (128, 512), "mps": (128, 384)}
#: Timed steps per side, after the warm-up.
CALIBRATION_STEPS = 4
#: Seconds the timed steps may take in all; a slower machine times fewer (at least one per side).
CALIBRATION_BUDGET = 1.5
#: Side of the plane on which the auto preset's noise estimate and mix are timed.
MIX_SIDE = 128
#: Planes of the small stack whose neighbour mix is timed (context filling's mix).
MIX_STACK = 5
#: A forward pass costs about a third of a training step (forward + backward).
FORWARD_SHARE = 1 / 3
#: Seconds per megapixel of the auto preset's per-plane work (noise estimate and the mix with
#: its non-linear candidates), alone and with neighbour planes, when :func:`calibrate` could not
#: time them: one thread of an AMD EPYC without AVX-512, FMDD's 512x512 planes and the 256x256
#: Z-stacks (docs/benchmarks.md, "Non-linear candidates in the mix").
MIX_FALLBACK = (5.5, 7.0)


def device_description(device: torch.device) -> str:
    """A name for ``device`` that changes when its speed may: the CPU model and threads, the GPU model."""
    if device.type == "cpu":
        return f"cpu: {_cpu_model()} ({torch.get_num_threads()} threads)"
    if device.type == "cuda" and torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return f"mps: {platform.machine()} {platform.mac_ver()[0]}".strip()
    return str(device)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def calibration_key(device: torch.device, precision: str, model: str, cuda_graphs: str = "auto") -> str:
    """The cache key of a calibration: device name, torch version, precision, model, CUDA-graph mode.

    ``precision`` is resolved ("auto" becomes what the device runs).
    """
    precision = resolve_precision(precision, device)
    graphs = f" | graphs {cuda_graphs}" if device.type == "cuda" else ""
    return f"{device_description(device)} | torch {torch.__version__} | {precision} | {model}{graphs}"


@dataclass(frozen=True)
class Calibration:
    """Speeds measured on one device, for one precision, model and CUDA-graph mode.

    Attributes
    ----------
    key : str
        :func:`calibration_key` of what was measured.
    step_overhead : float
        Seconds of a filling step that do not grow with the pixels.
    step_per_megapixel : float
        Seconds of a filling step per megapixel of the batch.
    mix_per_megapixel : float
        Seconds per megapixel of the auto preset's per-plane work besides the
        network (noise estimate, blurs, risk-minimising mix).
    stack_mix_per_megapixel : float
        The same with neighbour planes (context filling of a stack).
    startup : float
        Seconds a run spends before its steps settle: loading the model on the
        device and the first step's extra cost at a new plane size (kernel
        selection, allocations).
    measured : str
        When (ISO date and time).
    steps : dict
        Seconds per step by plane side, as measured (for the record).
    notes : list of str
        What could not be measured and was taken from defaults instead.
    """

    key: str
    step_overhead: float
    step_per_megapixel: float
    mix_per_megapixel: float
    stack_mix_per_megapixel: float
    startup: float = 0.0
    measured: str = ""
    steps: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    version: int = CALIBRATION_VERSION

    def step_seconds(self, pixels: float) -> float:
        """Seconds of one filling step over ``pixels`` pixels (the whole batch)."""
        return self.step_overhead + self.step_per_megapixel * pixels / 1e6

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`; unknown keys are ignored (a newer version's extra fields)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _cache_path(cache: Path | None) -> Path:
    return (cache if cache is not None else user_cache_dir()) / CACHE_FILE


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent or damaged: measured again
        return {}
    return data if isinstance(data, dict) else {}


def load_calibration(key: str, cache: Path | None = None) -> Calibration | None:
    """The cached calibration under ``key``, None when there is none (or it is from an older version)."""
    entry = _read_cache(_cache_path(cache)).get(key)
    if not isinstance(entry, dict) or entry.get("version") != CALIBRATION_VERSION:
        return None
    try:
        return Calibration.from_dict(entry)
    except TypeError:
        return None


def save_calibration(calibration: Calibration, cache: Path | None = None) -> Path:
    """Store ``calibration`` under its key (other entries are kept); return the file's path.

    The file is replaced atomically, so that two processes calibrating at
    once leave one complete file.
    """
    path = _cache_path(cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _read_cache(path)
    data[calibration.key] = calibration.to_dict()
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(temporary, path)
    return path


def _synchronize(device: torch.device) -> None:
    # GPU work is queued: time only what has finished.
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _fluorescence_like(side: int, planes: int, seed: int) -> list[np.ndarray]:
    """``planes`` planes ``(1, side, side)`` in [0, 1]: smooth blobs with shot and read noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    clean = np.zeros((side, side))
    for cy, cx, r in rng.uniform((0.1, 0.1, 0.03), (0.9, 0.9, 0.12), (12, 3)):
        clean += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    clean = 0.05 + 0.6 * clean / clean.max()
    return [np.clip(rng.poisson(clean * 40) / 40 + rng.normal(0, 0.02, clean.shape), 0, 1)[None] for _ in range(planes)]


def _time_mix(clock: Callable[[], float], notes: list[str]) -> tuple[float, float]:
    """Seconds per megapixel of the auto preset's mix: one plane alone, and with neighbour planes."""
    from napari_mpid.core import auto
    from napari_mpid.core.noise import estimate_noise_channels

    planes = _fluorescence_like(MIX_SIDE, MIX_STACK, seed=0)
    held = np.random.default_rng(1).random((MIX_SIDE, MIX_SIDE)) < auto.HOLDOUT_FRACTION
    megapixels = MIX_SIDE * MIX_SIDE / 1e6
    middle = MIX_STACK // 2
    alone, stack = MIX_FALLBACK
    estimate_noise_channels(planes[0])  # builds its lookup table once per process
    try:
        start = clock()
        noise = estimate_noise_channels(planes[middle])
        auto.combine(planes[middle], {"filling": planes[middle] * 0.9}, held, noise)
        middle_time = clock()
        noise = estimate_noise_channels(planes[middle])
        neighbours = auto.neighbour_candidates(
            lambda i: planes[i], MIX_STACK, middle, 2, denoise=auto.mean_denoiser(noise)
        )
        auto.combine(planes[middle], {"filling": planes[middle] * 0.9}, held, noise, independent=neighbours)
        end = clock()
    except Exception as exc:  # a timing probe of another module's internals must never break the estimate
        notes.append(f"mix not timed ({type(exc).__name__}: {exc}); default speeds used")
        return alone, stack
    alone = max(middle_time - start, 0.0) / megapixels
    stack = max(end - middle_time, 0.0) / megapixels
    return alone, stack


def calibrate(
    model: str,
    device: torch.device,
    precision: str = "auto",
    *,
    cuda_graphs: str = "auto",
    loaded: LoadedModel | None = None,
    sides: tuple[int, int] | None = None,
    steps: int = CALIBRATION_STEPS,
    budget: float = CALIBRATION_BUDGET,
    clock: Callable[[], float] = time.perf_counter,
    cache: Path | None = None,
    save: bool = True,
) -> Calibration:
    """Measure the filling speed on ``device`` and cache it (about a second on a CPU).

    Parameters
    ----------
    model : str
        The model spec of the runs (a bundled name or a checkpoint path), as in
        :class:`~napari_mpid.core.params.FillParams`.
    device : torch.device
        Where the runs will fill.
    precision : str
        "auto", "float32" or "bfloat16", as in the runs.
    cuda_graphs : str
        "auto" or "off", as in the runs (CUDA only).
    loaded : LoadedModel, optional
        The model already loaded (on any device); its network is copied, never changed.
    sides : tuple of int, optional
        The two plane sides timed; default :data:`CALIBRATION_SIDES` for the device type.
    steps : int
        Timed steps per side, after the warm-up (one step, or the eager steps
        and the capture of a CUDA graph).
    budget : float
        Seconds the timed steps of both sides should take at most: where
        the warm-up shows that ``steps`` would take longer, fewer are timed
        (at least one per side).
    clock : callable
        Seconds, monotonic. It is read twice around the model's loading, three
        times per side (before and after the warm-up, after the timed steps)
        and three times around the mix (before, after the single-plane mix,
        after the stack mix).
    cache : Path, optional
        The cache folder; default :func:`~napari_mpid.core.cache.user_cache_dir`.
    save : bool
        Store the result in the cache.

    Returns
    -------
    Calibration
    """
    precision = resolve_precision(precision, device)
    key = calibration_key(device, precision, model, cuda_graphs)
    sides = sides or CALIBRATION_SIDES.get(device.type, CALIBRATION_SIDES["cuda"])
    start = clock()
    source = loaded if loaded is not None else load_model(model, device)
    network = copy.deepcopy(source.network).to(device)  # the filling fine-tunes it
    state = {k: v.to(device) for k, v in source.state.items()}
    loading = clock() - start
    settings = FillSettings(
        mask_ratio=model_mask_ratio(source)[0],
        learning_rate=2e-3,
        beta=0.9,
        precision=precision,
        channels_last=precision == "bfloat16" or device.type == "cuda",
        cuda_graph=cuda_graphs == "auto",
    )
    filler = IterativeFiller(network, state, settings)
    capture = settings.cuda_graph and cuda_graphs_supported(device, [torch.Generator(device)])
    warmup = GRAPH_WARMUP + 1 if capture else 1
    per_step: dict[int, float] = {}
    shape_extra = 0.0
    for k, side in enumerate(sides):
        pixels = torch.rand((1, network.channels, side, side), generator=torch.Generator().manual_seed(k))
        generator = torch.Generator(device).manual_seed(k)
        running = filler.run(pixels.to(device), warmup + steps, generator=generator)
        before = clock()
        for _ in range(warmup):
            next(running)
        _synchronize(device)
        warmed = clock()
        # A slow or busy machine times fewer steps: the warm-up bounds one step from above.
        timed = int(min(steps, max(1, budget / len(sides) / max((warmed - before) / warmup, 1e-9))))
        for _ in range(timed):
            next(running)
        _synchronize(device)
        per_step[side] = max(clock() - warmed, 0.0) / timed
        running.close()
        # The first side's warm-up also pays the process's one-off set-up, which a run in a
        # process that calibrated does not pay again; the second's is what a new plane size costs.
        shape_extra = max(warmed - before - warmup * per_step[side], 0.0)
    (small, t_small), (large, t_large) = sorted(per_step.items())
    p_small, p_large = small * small / 1e6, large * large / 1e6
    rate = max((t_large - t_small) / (p_large - p_small), 0.0) if p_large > p_small else 0.0
    if rate == 0.0:  # timing noise made the large side no slower: all of it counted as per-pixel cost
        rate = t_large / p_large
    overhead = max(t_small - rate * p_small, 0.0)
    notes: list[str] = []
    mix, stack_mix = _time_mix(clock, notes)
    calibration = Calibration(
        key=key,
        step_overhead=overhead,
        step_per_megapixel=rate,
        mix_per_megapixel=mix,
        stack_mix_per_megapixel=stack_mix,
        startup=loading + shape_extra,
        measured=datetime.datetime.now().isoformat(timespec="seconds"),
        steps={str(s): t for s, t in per_step.items()},
        notes=notes,
    )
    if save:
        save_calibration(calibration, cache)
    return calibration


def network_decision(part: np.ndarray, noise: Any = None) -> tuple[bool, str]:
    """Whether the auto preset runs the network on this part ``(C, H, W)`` in [0, 1], and why.

    Asks :func:`napari_mpid.core.auto.network_decision` where that exists
    (with ``noise``, the part's noise where known: a run's noise profile);
    otherwise the network always runs.
    """
    from napari_mpid.core import auto

    decide = getattr(auto, "network_decision", None)
    if decide is None:
        return True, ""
    runs, reason = decide(part) if noise is None else decide(part, noise)
    return bool(runs), str(reason)


def decision_plane(plan: Plan) -> int:
    """The plane whose noise the auto preset's network decision reads first: the first plane filled
    alone, or the middle plane of the first series of context filling."""
    if plan.series and not plan.params.static_scene:
        first = plan.series[0]
        return first[len(first) // 2]
    return 0


def first_part(source: Any, plan: Plan, number: int = 0) -> np.ndarray:
    """Plane ``number``'s first part ``(C, H, W)`` in [0, 1], scaled as a run would scale it.

    Only that plane is read (the scale is fitted on it alone, which may
    differ slightly from the run's fit over all planes of its channel).
    """
    return scaled_first_part(source, plan, number)[0]


def scaled_first_part(source: Any, plan: Plan, number: int = 0) -> tuple[np.ndarray, IntensityScale]:
    """:func:`first_part` and the intensity scale it was scaled by."""
    index = plan.planes[number]
    one = dataclasses.replace(plan, planes=[index])
    scale = fit_scales(source, one, plan.params.normalization)[channel_of(plan, index)]
    part = split_parts(plan.read(source, index), plan)[0]
    return np.clip(scale.forward(part), 0.0, 1.0), scale


def run_seconds(plan: Plan, calibration: Calibration, *, network: bool = True) -> float:
    """Seconds a run of ``plan`` takes with the speeds of ``calibration``.

    Every step of the plan is counted (the auto preset may stop a plane
    early: then this is an upper bound). ``network=False`` counts a run of
    the auto preset in which the network does not run (only the noise
    estimate and the blur mix of every plane).
    """
    p = plan.params
    plane_pixels = plan.height * plan.width
    static = p.static_scene
    step = calibration.step_seconds
    seconds = calibration.startup
    if not plan.series or static:
        filled = len(plan.series) if static else len(plan.planes)
        if network:
            # Stack mode (several planes in one batch) fills with the paper's loop only.
            if plan.stack > 1 and len(plan.tiles) == 1 and not p.adaptive:
                chunks = -(-filled // plan.stack)
                seconds += chunks * p.iterations * step(min(plan.stack, filled) * plane_pixels)
            else:
                per_part = sum(step(t.height * t.width) for t in plan.tiles)
                seconds += filled * plan.parts * p.iterations * per_part
        if p.adaptive:
            seconds += filled * plan.parts * plane_pixels / 1e6 * calibration.mix_per_megapixel
        return seconds
    f = p.pd_factor
    sub_h, sub_w = -(-plan.height // f), -(-plan.width // f)
    if network:
        crop = min(CONTEXT_CROP, sub_h) * min(CONTEXT_CROP, sub_w) * f * f
        seconds += len(plan.series) * p.iterations * step(crop)
        seconds += len(plan.planes) * CONTEXT_PASSES * FORWARD_SHARE * step(sub_h * sub_w * f * f)
    if p.adaptive:
        seconds += len(plan.planes) * plane_pixels / 1e6 * calibration.stack_mix_per_megapixel
    return seconds


class EtaTracker:
    """The time left in a run, from the estimate made before it and the rate measured since.

    Early in a run the measured rate is mostly start-up (loading, the first
    steps' kernel selection) and says little; the estimate made before the
    run says more. As the run advances the measured rate takes over: with
    ``m`` the fraction of the run measured since the first update, its
    weight is ``m / (m + settle)``.

    Parameters
    ----------
    estimate : float or None
        Seconds the whole run was expected to take (None: no estimate).
    settle : float
        Fraction of the run after which the measured rate and the estimate
        weigh the same.
    """

    def __init__(self, estimate: float | None, settle: float = 0.05) -> None:
        self.estimate = estimate
        self.settle = settle
        self._first: tuple[float, float] | None = None

    def update(self, elapsed: float, fraction: float) -> float | None:
        """Seconds left after ``elapsed`` seconds with ``fraction`` of the run done; None if unknown."""
        fraction = min(max(fraction, 0.0), 1.0)
        if self._first is None:
            self._first = (elapsed, fraction)
        left = 1.0 - fraction
        prior = None if self.estimate is None else self.estimate * left
        e0, f0 = self._first
        measured_share = fraction - f0
        if measured_share <= 0 or elapsed <= e0:
            if prior is not None:
                return prior
            return elapsed * left / fraction if fraction > 0 else None
        measured = (elapsed - e0) / measured_share * left
        if prior is None:
            return measured
        weight = measured_share / (measured_share + self.settle)
        return weight * measured + (1 - weight) * prior
