"""Denoising N-D microscopy arrays plane by plane: the core's long-running work.

:func:`denoise_planes` is a generator: it yields a :class:`Progress` after
every filling iteration (and one with ``event="plane"`` when a plane has
been written to the outputs) and returns a :class:`DenoiseResult`. Scripts
run it to the end (:func:`napari_mpid.api.denoise`); the napari widget runs
it in a ``thread_worker``, whose ``quit()`` closes the generator between two
iterations. The input is never modified and nothing partial is returned
when the generator is closed early.

The work is split into: :mod:`.plan` (validation, planes, tiles, seeds),
:mod:`.scales` (intensity scales), this module (the loops) and
:mod:`.assemble` (parts of a plane, outputs).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from .assemble import Outputs, check_finite, merge_parts, split_parts
from .auto import (
    CORRELATED,
    FAMILIES,
    HOLDOUT_FRACTION,
    Combination,
    EarlyStop,
    choose_filling,
    combine,
    neighbour_candidates,
    network_decision,
)
from .axes import AXIS_LETTERS, resolve_axes
from .checkpoints import LoadedModel, load_model
from .context import ContextFiller, PlaneCache
from .devices import resolve_device, resolve_precision
from .errors import InputError, OutOfMemory
from .filling import IterativeFiller
from .noise import NoiseEstimate, estimate_noise_channels
from .normalization import IntensityScale
from .params import FillParams
from .plan import Plan, make_plan, memory_budget, plane_seed
from .scales import channel_of, count_outside, fit_scales
from .shuffle import pixel_shuffle_merge, pixel_shuffle_split
from .stacked import StackedFiller
from .tiling import blend_weights, plan_tiles

__all__ = ["AXIS_LETTERS", "DenoiseResult", "InputError", "Progress", "denoise_planes", "resolve_axes"]


@dataclass(frozen=True)
class Progress:
    """Where a denoising run stands.

    Attributes
    ----------
    plane, planes : int
        1-based position of the plane being filled within this run, and how
        many planes the run fills.
    iteration, iterations : int
        Filling iteration t of T within the current plane, part and tile.
    tile, tiles : int
        1-based tile index within the plane, and tiles per plane.
    elapsed : float
        Seconds since the run started.
    preview : ndarray or None
        Current state of this plane (Y, X[, S]) in input units: finished
        tiles and colour parts, the running average of the one being filled
        and the input elsewhere. Only every ``preview_every`` iterations when
        asked for.
    group : int
        Planes filled together in stack mode (``plane`` is the first of them).
    part, parts : int
        Colour part being filled (an RGB plane with a 1-channel model is
        filled as 3 parts), and parts per plane.
    number : int
        0-based number of the (first) current plane in the whole stack.
    event : str
        "iteration" after a filling step; "plane" once the plane(s) have been
        written to the outputs.
    stage : str
        "fill" (every plane filled alone, the paper's method), or for context
        filling "fit" (fine-tuning the stack's network: ``iteration`` of
        ``iterations`` steps) and "predict" (``plane`` being predicted).
    done, total : float
        Work done and in all, in arbitrary units, when the stages are not
        alike (context filling); 0 otherwise.
    """

    plane: int
    planes: int
    iteration: int
    iterations: int
    tile: int = 1
    tiles: int = 1
    elapsed: float = 0.0
    preview: np.ndarray | None = None
    group: int = 1
    part: int = 1
    parts: int = 1
    number: int = 0
    event: str = "iteration"
    stage: str = "fill"
    done: float = 0.0
    total: float = 0.0

    @property
    def fraction(self) -> float:
        """Fraction of the whole run done, in [0, 1]."""
        if self.total:
            return min(1.0, self.done / self.total)
        per_tile = max(self.iterations, 1)  # iterations 0: the auto preset's mix alone
        per_part = self.tiles * per_tile
        per_plane = self.parts * per_part
        step = per_tile if self.event == "plane" else self.iteration  # a finished plane counts whole
        within = (self.part - 1) * per_part + (self.tile - 1) * per_tile + step
        done = (self.plane - 1) * per_plane + self.group * within
        return done / (self.planes * per_plane)

    @property
    def eta(self) -> float | None:
        """Estimated seconds left, None before any work was measured."""
        f = self.fraction
        return self.elapsed * (1 - f) / f if f > 0 else None


@dataclass
class DenoiseResult:
    """Outputs of a run, with everything needed to reproduce it.

    Attributes
    ----------
    denoised, noise_map : array-like
        Same shape as the input, float32, in the input's intensity units
        (``noise_map = input - denoised``; None when not asked for). numpy
        arrays unless other outputs were passed to :func:`denoise_planes`.
    params : FillParams
        The parameters as used (mask ratio and stack size resolved).
    notes : list of str
        What was chosen automatically, and why.
    fitted : dict
        Context filling: the fitted network's weights per series (pass them
        back as ``fitted=`` to predict more planes of the same stacks).
    choices : list of dict
        The auto preset's choices per plane and colour part (noise, mask
        ratio, stopping iteration, blend) and why.
    """

    denoised: Any
    noise_map: Any
    params: FillParams
    axes: str
    model: str
    model_sha256: str
    device: str
    seconds: float
    precision: str = "float32"
    scales: list[tuple[float, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    planes: int = 0
    fitted: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)
    choices: list[dict[str, Any]] = field(default_factory=list)

    def produced_by(self) -> dict[str, float]:
        """Percent of the result each family produced (network, neighbour planes, blurs, noisy pixel).

        The mean over planes and parts of the final mix's shares
        (:meth:`~napari_mpid.core.auto.Combination.shares`); the paper's
        presets are the network's filling alone.
        """
        if not self.choices:
            return {family: (100.0 if family == "network" else 0.0) for family in FAMILIES}
        return {
            family: round(100 * float(np.mean([c.get("shares", {}).get(family, 0.0) for c in self.choices])), 1)
            for family in FAMILIES
        }

    def summary(self) -> str:
        """What was done, in plain words: planes, time, device, what produced the result, noise before and after.

        The first sentence carries what produced the result (the widget's
        status line shows it alone), e.g. "Denoised 8 planes in 3 s on cpu
        without the network: blurs 80 %, neighbour planes 19 %, noisy pixel 1 %."
        """
        count = f"{self.planes} plane{'s' if self.planes != 1 else ''}"
        text = f"Denoised {count} in {self.seconds:.0f} s on {self.device}"
        shares = self.produced_by()
        made = ", ".join(f"{k} {_percent(v)}" for k, v in shares.items() if v > 0)
        if not self.choices:
            return f"{text} with the paper's iterative filling: {made}."
        ran = sum(1 for c in self.choices if c.get("network", True))
        if ran == 0:
            text += " without the network"
        else:
            where = "every plane" if ran == len(self.choices) else f"{ran} of {len(self.choices)} planes"
            text += f" with the network on {where}"
            if shares["network"] == 0:
                made = f"network 0 %, {made}"
        text += f": {made}."
        before = float(np.sqrt(np.mean([c["noise_sigma"] ** 2 for c in self.choices])))
        after = float(np.sqrt(np.mean([c.get("estimated_error", 0.0) for c in self.choices])))
        if before > 0:
            text += (
                f" Estimated noise {100 * before:.2g} % of the intensity range before, "
                f"{100 * after:.2g} % after ({20 * np.log10(before / max(after, 1e-12)):.1f} dB less)."
            )
        return text

    def metadata(self) -> dict[str, Any]:
        """Flat, JSON-friendly record of the run (for layer metadata and TIFF tags)."""
        from .. import __version__

        return {
            "software": f"napari-mpid {__version__}",
            **{f"param_{k}": v for k, v in self.params.to_dict().items()},
            "axes": self.axes,
            "model": self.model,
            "model_sha256": self.model_sha256,
            "device": self.device,
            "precision": self.precision,
            "seconds": round(self.seconds, 2),
            "planes": self.planes,
            "intensity_scales": [list(s) for s in self.scales],
            "summary": self.summary(),
            "produced_by": self.produced_by(),
            "notes": list(self.notes) + _summarize(self.choices),
            "warnings": list(self.warnings),
            **({"auto_choices": list(self.choices)} if self.choices else {}),
        }


def _summarize(choices: list[dict[str, Any]]) -> list[str]:
    """One note per auto-preset run: the noise, where the network ran and what the mix used, over all planes."""
    if not choices:
        return []
    ran = [c for c in choices if c.get("network", True)]
    sigmas = [c["noise_sigma"] for c in choices]
    text = f"auto: {len(choices)} plane(s)/part(s); noise {min(sigmas):.3g}-{max(sigmas):.3g} (RMS, scaled units)"
    text += f"; network on {len(ran)} of {len(choices)}"
    if ran:
        stops = [t for c in ran for t in c["stopped_at"]]
        ratios = sorted({c["mask_ratio"] for c in ran})
        text += f" (mask ratio {', '.join(f'{r:.2f}' for r in ratios)}"
        text += f", stopped at iterations {min(stops)}-{max(stops)})" if stops else ")"
    reasons = sorted({c["network_reason"] for c in choices if "network_reason" in c})
    if reasons:
        text += f" [{'; '.join(reasons)}]"
    return [text + " (per plane in auto_choices)"]


def _percent(value: float) -> str:
    return f"{value:.0f} %" if value >= 1 or value == 0 else "<1 %"


def wants_network(params: FillParams, part: np.ndarray, noise: NoiseEstimate) -> tuple[bool, str]:
    """Whether an auto-preset run fills this part with the network (see :attr:`FillParams.network_use`)."""
    use = params.network_use
    if use == "never":
        return False, "network off (iterations 0)" if params.iterations == 0 else "network off (network 'never')"
    if use == "always":
        return True, "network on (network 'always')"
    return network_decision(part, noise)


def _record(choice: dict[str, Any], how: Combination, network: str | None) -> dict[str, Any]:
    """``choice`` completed with how the final mix came out (weights, shares of each family, estimated error)."""
    # A filling left out as a copy of the plane's noise (combine's rejected) has no weight at all.
    choice["blend_weight"] = round(how.weights.get(network, 0.0), 3) if network else 0.0
    choice["blend"] = how.describe()
    choice["shares"] = {k: round(v, 4) for k, v in how.shares().items()}
    choice["estimated_error"] = round(max(how.held_out_error, 0.0), 8)
    return choice


class _PlaneFiller:
    """Fills one part ``(C, H, W)`` in [0, 1] of a plane: tiles, pixel-shuffle, the filler."""

    def __init__(self, model: LoadedModel, plan: Plan, device: torch.device) -> None:
        self.model = model
        self.plan = plan
        self.params = p = plan.params
        self.device = device
        self.precision = resolve_precision(p.precision, device)
        self.filler = IterativeFiller(
            model.network,
            model.state,
            beta=p.beta,
            mask_ratio=p.mask_ratio,
            learning_rate=p.learning_rate,
            precision=self.precision,
            channels_last=self.precision == "bfloat16" or device.type == "cuda",
            cuda_graph=p.cuda_graphs == "auto",
        )
        #: The plane as filled so far, (C, H, W) in [0, 1], for previews.
        self.canvas: np.ndarray | None = None
        #: What the auto preset chose for every plane and part (JSON-friendly dicts).
        self.choices: list[dict[str, Any]] = []
        self._live: tuple[Any, Any] | None = None  # (tile slices, running-average getter)

    def fill(self, part: np.ndarray, number: int, part_no: int) -> Generator[tuple[int, int], None, np.ndarray]:
        """Yield (tile, iteration) and return the filled part (C, H, W) in [0, 1].

        With ``adaptive`` parameters (the auto preset) the mask ratio comes
        from the part's noise, a few pixels are held out to stop the filling
        when it no longer improves, and the result is blended with the best
        Gaussian blur (see :mod:`napari_mpid.core.auto`); the choices are
        appended to :attr:`choices`.
        """
        p, tiles, weights = self.params, self.plan.tiles, self.plan.weights
        self.filler.shared_mask = self.gray_in_colour_network(part)
        self.canvas = part.astype(np.float32, copy=True)
        out = np.zeros_like(part) if len(tiles) > 1 else None
        held, slopes = None, []
        if p.adaptive:
            noise = estimate_noise_channels(part)
            changes, why = choose_filling(noise, p.mask_ratio)
            self.filler.mask_ratio = changes["mask_ratio"]
            hold_gen = torch.Generator().manual_seed(plane_seed(p.seed, number, part_no, _HOLDOUT_TILE))
            held = (torch.rand(part.shape[1:], generator=hold_gen) < HOLDOUT_FRACTION).numpy()
            network, network_why = wants_network(p, part, noise)
            choice = {"plane": number, "part": part_no, "noise_sigma": round(noise.sigma, 5),
                      "noise_correlation": round(noise.correlation, 3), "mask_ratio": changes["mask_ratio"],
                      "reason": why, "network": network, "network_reason": network_why,
                      "stopped_at": []}  # fmt: skip
            if not network:
                out, how = combine(part, {}, held, noise)
                self.choices.append(_record(choice, how, None))
                return out
        for k, tile in enumerate(tiles):
            piece = part[(slice(None), *tile.slices)]
            gen = torch.Generator(self.device).manual_seed(plane_seed(p.seed, number, part_no, k))
            self._live = (tile.slices, lambda: self.filler.running_average)
            holdout = self.holdout_batch(held[tile.slices]) if held is not None else None
            stopper, best = (EarlyStop(), None) if held is not None else (None, None)
            steps = self.filler.run(self.to_batch(piece), p.iterations, generator=gen, holdout=holdout)
            for t in steps:
                yield k + 1, t
                if stopper is not None:
                    improved, stop = stopper.update(self.filler.validation[:t].float().cpu().numpy())
                    if improved:
                        best = self.filler.held_out_average().clone()
                    if stop:
                        steps.close()
                        break
            average = best if best is not None else self.filler.held_out_average()
            if stopper is not None:
                choice["stopped_at"].append(stopper.stopped_at or p.iterations)
                if noise.correlation >= CORRELATED:
                    probe = torch.Generator(self.device).manual_seed(plane_seed(p.seed, number, part_no, k) + 1)
                    slopes.append(self.filler.probe_slope(self.to_batch(piece), noise.correlation, noise.sigma, probe))
            result = self.from_batch(average, *piece.shape)
            self._live = None
            self.canvas[(slice(None), *tile.slices)] = result
            if out is None:
                out = result
            else:
                out[(slice(None), *tile.slices)] += result * weights[k]
        if held is not None:
            slope = float(np.mean(slopes)) if slopes else 0.0
            out, how = combine(part, {"filling": (out, slope)}, held, noise)
            if slopes:
                choice["filled_slope"] = round(slope, 4)
            self.choices.append(_record(choice, how, "filling"))
        return out

    def gray_in_colour_network(self, part: np.ndarray) -> bool:
        """A gray part enters a 3-channel network as three equal channels: its masks must be shared."""
        return part.shape[0] == 1 and self.model.network.channels == 3

    def holdout_batch(self, held: np.ndarray) -> torch.Tensor:
        """A held-out pixel map (H, W) in the network's batch layout ``(f*f, K, H/f, W/f)``."""
        f = self.params.pd_factor
        h, w = held.shape
        x = torch.from_numpy(held.astype(np.float32)).to(self.device)[None, None]
        ph, pw = (-h) % f, (-w) % f
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        x = pixel_shuffle_split(x, f)
        k = self.model.network.mask_channels
        return x.expand(x.shape[0], k, *x.shape[2:]).contiguous() if k > 1 else x

    def preview(self) -> np.ndarray:
        """The part as it stands: finished tiles, the current tile's running average, the input elsewhere."""
        canvas = self.canvas.copy()
        if self._live is not None:
            slices, average = self._live
            c, h, w = canvas[(slice(None), *slices)].shape
            canvas[(slice(None), *slices)] = self.from_batch(average(), c, h, w)
        return canvas

    def to_batch(self, part: np.ndarray) -> torch.Tensor:
        """``(C, H, W)`` in [0, 1] -> the network's batch ``(f*f, C', H/f, W/f)`` on the device."""
        f = self.params.pd_factor
        c, h, w = part.shape
        x = torch.from_numpy(np.ascontiguousarray(part, dtype=np.float32)).to(self.device)[None]
        if self.model.network.channels == 3 and c == 1:
            x = x.expand(1, 3, h, w).contiguous()  # the paper feeds gray as 3 equal channels
        ph, pw = (-h) % f, (-w) % f
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        return pixel_shuffle_split(x, f)

    def from_batch(self, ybar: torch.Tensor, c: int, h: int, w: int) -> np.ndarray:
        """Inverse of :meth:`to_batch` for a running average: back to ``(c, H, W)``."""
        out = pixel_shuffle_merge(ybar, self.params.pd_factor)[0, :, :h, :w]
        if out.shape[0] != c:
            out = out.mean(dim=0, keepdim=True)
        # A copy: the filler keeps updating its buffer in place (previews).
        return out.detach().float().cpu().numpy().copy()

    def fill_stack(self, parts: list[np.ndarray], numbers: list[int]) -> Generator[int, None, list[np.ndarray]]:
        """Fill same-sized single-tile planes together (stack mode); yield t, return the planes."""
        p = self.params
        c, h, w = parts[0].shape
        batch = torch.stack([self.to_batch(part) for part in parts])
        gens = [torch.Generator(self.device).manual_seed(plane_seed(p.seed, n)) for n in numbers]
        stacked = StackedFiller(
            self.model.network,
            self.model.state,
            beta=p.beta,
            mask_ratio=p.mask_ratio,
            learning_rate=p.learning_rate,
            precision=self.precision,
            cuda_graph=p.cuda_graphs == "auto",
            shared_mask=self.gray_in_colour_network(parts[0]),
        )
        self.canvas = parts[0].astype(np.float32, copy=True)
        self._live = ((slice(None), slice(None)), lambda: stacked.running_average[0])
        yield from stacked.run(batch, p.iterations, generators=gens)
        self._live = None
        return [self.from_batch(ybar, c, h, w) for ybar in stacked.running_average]


def _private_model(model: LoadedModel, device: torch.device) -> LoadedModel:
    """A copy of a caller's model on ``device``: filling fine-tunes the network, never the caller's."""
    network = copy.deepcopy(model.network).to(device)
    state = {k: v.to(device) for k, v in model.state.items()}  # read-only during filling
    return LoadedModel(network, state, model.source, model.sha256, dict(model.metadata))


def _as_source(image: Any) -> Any:
    """numpy arrays and lazy array-likes (dask, zarr, memory-mapped TIFF) are read plane by plane."""
    if all(hasattr(image, a) for a in ("shape", "dtype", "__getitem__")):
        return image
    return np.asarray(image)


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _denoise(
    image: Any,
    params: FillParams,
    *,
    axes: str | None = None,
    rgb: bool | None = None,
    model: LoadedModel | None = None,
    preview_every: int | None = None,
    out: Any = None,
    noise_out: Any = None,
    noise_map: bool = True,
    planes: Iterable[int] | None = None,
    scales: dict[int, IntensityScale] | None = None,
    fitted: dict[int, dict[str, torch.Tensor]] | None = None,
) -> Generator[Progress, None, DenoiseResult]:
    """The body of :func:`denoise_planes` (which adds the out-of-memory message)."""
    source = _as_source(image)
    device = resolve_device(params.device)
    model = load_model(params.model, device) if model is None else _private_model(model, device)
    plan = make_plan(source.shape, source.dtype, params, model, device, axes=axes, rgb=rgb)
    if isinstance(source, np.ndarray):
        check_finite(source, "the image")
    numbers = list(range(len(plan.planes))) if planes is None else sorted(set(int(n) for n in planes))
    if numbers and not 0 <= numbers[0] <= numbers[-1] < len(plan.planes):
        raise InputError(f"plane numbers must be in [0, {len(plan.planes)}), got {numbers[0]}..{numbers[-1]}")
    if scales is None:
        scales = fit_scales(source, plan, plan.params.normalization, plan.notes)
    outputs = Outputs(plan, out, noise_out, with_noise_map=noise_map, partial=len(numbers) < len(plan.planes))
    run = _Run(plan, source, scales, outputs, _PlaneFiller(model, plan, device), numbers, preview_every)
    if plan.params.static_scene:
        yield from _static_mode(run)
    elif plan.series:
        fitted = dict(fitted or {})
        yield from _context_mode(run, model, fitted)
    elif plan.stack > 1 and not plan.params.adaptive:
        # Stack mode fills planes with the paper's loop only; the auto preset's
        # per-plane choices (hold-out, stopping, mix) need one plane at a time.
        yield from _stack_mode(run)
    else:
        yield from _plane_by_plane(run)

    p = plan.params
    warnings = list(run.warnings)
    networked = not p.adaptive or any(c.get("network", True) for c in run.filler.choices)
    if run.outside and networked:
        # Only the network works in [0, 1]; the mix of blurs and planes is linear and keeps every value.
        warnings.append(
            f"{run.outside} pixel(s) lie beyond the intensity range the network works in "
            f"(normalization '{p.normalization}'), so the network may dim them; if they are bright "
            "structures you want to measure, run again with normalization 'minmax'"
        )
    return DenoiseResult(
        denoised=outputs.denoised,
        noise_map=outputs.noise_map,
        params=p,
        axes=plan.axes,
        model=model.source,
        model_sha256=model.sha256,
        device=str(device),
        seconds=time.perf_counter() - run.start,
        precision=run.filler.precision,
        scales=[(s.low, s.high) for s in scales.values()],
        warnings=warnings,
        notes=list(plan.notes),
        planes=len(numbers),
        fitted=fitted if plan.series and not p.static_scene else {},
        choices=run.filler.choices,
    )


class _Run:
    """What the loops of one run share: the plan, the source, scales, outputs, progress."""

    def __init__(self, plan, source, scales, outputs, filler, numbers, preview_every) -> None:
        self.plan, self.source, self.scales, self.outputs = plan, source, scales, outputs
        self.filler: _PlaneFiller = filler
        self.numbers: list[int] = numbers
        self.preview_every = preview_every
        self.params: FillParams = plan.params
        self.start = time.perf_counter()
        self.outside = 0
        self.warnings: list[str] = []

    def read(self, number: int, count: bool = True) -> tuple[tuple[int, ...], np.ndarray, IntensityScale]:
        """Plane ``number`` as stored (Y, X[, S]), its index and scale; ``count`` its out-of-range values."""
        plan = self.plan
        index = plan.planes[number]
        plane = plan.read(self.source, index)
        if not isinstance(self.source, np.ndarray):
            check_finite(plane, f"plane {index}")
        scale = self.scales[channel_of(plan, index)]
        if count and self.params.normalization in ("auto", "percentile", "none"):
            self.outside += count_outside(plane[..., :3] if plan.samples else plane, scale)
        return index, plane, scale

    def progress(self, position: int, number: int, t: int, **extra: Any) -> Progress:
        return Progress(
            position + 1,
            len(self.numbers),
            t,
            self.params.iterations,
            elapsed=time.perf_counter() - self.start,
            parts=self.plan.parts,
            tiles=len(self.plan.tiles),
            number=number,
            **extra,
        )

    def wants_preview(self, t: int) -> bool:
        every = self.preview_every
        return bool(every) and (t % every == 0 or t == self.params.iterations)

    def preview(self, scale: IntensityScale, done: list[np.ndarray], todo: list[np.ndarray], plane: np.ndarray):
        parts = [*done, scale.inverse(self.filler.preview()), *todo]
        return merge_parts(plane, parts, self.plan)


def _plane_by_plane(run: _Run) -> Generator[Progress, None, None]:
    """The paper's filling: every plane (and colour part, and tile) with its own fine-tuning."""
    plan, filler, iterations = run.plan, run.filler, run.params.iterations
    for position, number in enumerate(run.numbers):
        index, plane, scale = run.read(number)
        parts = split_parts(plane, plan)
        filled: list[np.ndarray] = []
        for part_no, part in enumerate(parts):
            gen = filler.fill(scale.forward(part), number, part_no)
            try:
                while True:
                    tile, t = next(gen)
                    shown = run.preview(scale, filled, parts[part_no + 1 :], plane) if run.wants_preview(t) else None
                    yield run.progress(position, number, t, tile=tile, part=part_no + 1, preview=shown)
            except StopIteration as stop:
                filled.append(scale.inverse(stop.value))
        run.outputs.write(index, plane, merge_parts(plane, filled, plan))
        yield run.progress(position, number, iterations, tile=len(plan.tiles), part=plan.parts, event="plane")


def _stack_mode(run: _Run) -> Generator[Progress, None, None]:
    """Planes with their own weights in one set of kernels (GPU); every plane gets the masks it gets alone."""
    plan, filler, numbers = run.plan, run.filler, run.numbers
    for first in range(0, len(numbers), plan.stack):
        chunk = numbers[first : first + plan.stack]
        loaded = [run.read(n) for n in chunk]
        gen = filler.fill_stack([scale.forward(split_parts(plane, plan)[0]) for _, plane, scale in loaded], chunk)
        try:
            while True:
                t = next(gen)
                shown = run.preview(loaded[0][2], [], [], loaded[0][1]) if run.wants_preview(t) else None
                yield run.progress(first, chunk[0], t, preview=shown, group=len(chunk))
        except StopIteration as stop:
            for (index, plane, scale), result in zip(loaded, stop.value):
                run.outputs.write(index, plane, merge_parts(plane, [scale.inverse(result)], plan))
        yield run.progress(
            first, chunk[0], run.params.iterations, group=len(chunk), event="plane", tile=len(plan.tiles),
            part=plan.parts,
        )  # fmt: skip


#: ``static_scene``: a plane whose difference to the (brightness-matched) mean of its series
#: exceeds this many times what its noise explains is reported: the scene may have moved
#: (:func:`_static_excess`, the largest of a series). Between FMD's static series and its
#: drifting ones; the ratios are in docs/benchmarks.md, "Stacks" (benchmarks/reference_limits.py).
STATIC_EXCESS = 1.6


def _static_mode(run: _Run) -> Generator[Progress, None, None]:
    """Repeated exposures of one scene: every series averaged, its mean filled as one plane, written to all.

    The planes are read twice (summed, then compared and written one by one)
    so that a long series never has to fit in memory.
    """
    plan, filler, iterations = run.plan, run.filler, run.params.iterations
    letters = [a for a in plan.axes if a not in "YXS"]
    wanted = set(run.numbers)
    position = 0

    def exposure(number: int, count: bool) -> tuple[tuple[int, ...], np.ndarray, IntensityScale, list[np.ndarray]]:
        index, plane, scale = run.read(number, count=count)
        return index, plane, scale, [scale.forward(part) for part in split_parts(plane, plan)]

    for series in plan.series:
        if not wanted.intersection(series):
            continue
        sums: list[np.ndarray] = []
        for number in series:
            *_, parts = exposure(number, count=True)
            sums = parts if not sums else [total + part for total, part in zip(sums, parts)]
        means = [total / len(series) for total in sums]
        filled: list[np.ndarray] = []
        for part_no, mean in enumerate(means):
            gen = filler.fill(mean, series[0], part_no)
            try:
                while True:
                    tile, t = next(gen)
                    yield run.progress(position, series[0], t, tile=tile, part=part_no + 1)
            except StopIteration as stop:
                filled.append(stop.value)
        moved = {}
        for number in series:
            index, plane, scale, parts = exposure(number, count=False)
            excess = _static_excess(parts, means, len(series))
            if excess > STATIC_EXCESS:
                moved[" ".join(f"{a}={i}" for a, i in zip(letters, index))] = excess
            if number in wanted:
                run.outputs.write(index, plane, merge_parts(plane, [scale.inverse(f) for f in filled], plan))
                yield run.progress(position, number, iterations, tile=len(plan.tiles), part=plan.parts, event="plane")
                position += 1
        if moved:
            shown = ", ".join(list(moved)[:5]) + (", ..." if len(moved) > 5 else "")
            run.warnings.append(
                f"static_scene: {len(moved)} of {len(series)} planes differ from the mean of their series by up "
                f"to {max(moved.values()):.1f}x their noise variance ({shown}): the scene may not be static, "
                "and the result shows the mean"
            )


def _static_excess(parts: list[np.ndarray], means: list[np.ndarray], count: int) -> float:
    """How much more a plane differs from its series' mean (scaled to its brightness) than noise would make it.

    For exposures of one scene with independent noise of variance v, a plane
    minus the mean of all ``count`` differs by ``v (1 - 1/count)``; the ratio
    of the measured difference to that (the plane's noise from
    :func:`~napari_mpid.core.noise.estimate_noise`) is ~1, and grows with
    whatever moved or changed.
    """
    excess = []
    for part, mean in zip(parts, means):
        gain = float(np.sum(part * mean) / max(float(np.sum(mean * mean)), 1e-12))
        variance = float(np.mean(estimate_noise_channels(part).variance(part))) * (1 - 1 / count)
        excess.append(float(np.mean((part - gain * mean) ** 2)) / max(variance, 1e-12))
    return max(excess)


def _context_mode(run: _Run, model: LoadedModel, fitted: dict[int, dict[str, torch.Tensor]]):
    """Context filling: per series, fit one network with neighbour planes, then predict its planes."""
    plan, filler, p = run.plan, run.filler, run.params
    f = p.pd_factor
    wanted = set(run.numbers)
    sub_h, sub_w = -(-plan.height // f), -(-plan.width // f)
    tile = max(p.tile_size // f, model.network.min_size)
    tiles = plan_tiles(sub_h, sub_w, tile, p.tile_overlap // f)
    weights = blend_weights(tiles, sub_h, sub_w) if len(tiles) > 1 else []
    crop = min(CONTEXT_CROP, tile)
    cfiller = ContextFiller(
        model.network,
        model.state,
        plan.context,
        mask_ratio=p.mask_ratio,
        learning_rate=p.learning_rate,
        precision=filler.precision,
        channels_last=filler.filler.channels_last,
        crop_size=crop,
        passes=CONTEXT_PASSES,
        shared_mask=plan.samples == 0 and model.network.channels == 3,
    )
    # Work units: a fit step on one crop is 1; predicting a plane is ~1/3 of a
    # step (forward only) per pass and per crop-sized area.
    fit_unit = 1.0
    plane_unit = CONTEXT_PASSES / 3 * (sub_h * sub_w) / (crop * crop)
    todo_series = [(k, series) for k, series in enumerate(plan.series) if wanted.intersection(series)]
    # Whether each series runs the network, from the noise of its middle plane (as the mask ratio).
    decisions: dict[int, tuple[NoiseEstimate, bool, str]] = {}
    if p.adaptive:
        for k, series in todo_series:
            _, plane, scale = run.read(series[len(series) // 2], count=False)
            middle = np.asarray(scale.forward(split_parts(plane, plan)[0]), dtype=np.float32)
            noise = estimate_noise_channels(middle)
            decisions[k] = (noise, *wants_network(p, middle, noise))
    network = {k: not p.adaptive or decisions[k][1] for k, _ in todo_series}
    total = sum((0 if k in fitted or not network[k] else p.iterations) * fit_unit for k, _ in todo_series)
    total += len(wanted) * plane_unit
    done, position = 0.0, 0
    budget = int(min(2**30, max(64 * 2**20, 0.25 * memory_budget(p, filler.device)[0])))

    def status(number: int, **extra: Any) -> Progress:
        return run.progress(position, number, extra.pop("t", 0), done=done, total=total, **extra)

    def held_out(number: int) -> np.ndarray:
        gen = torch.Generator().manual_seed(plane_seed(p.seed, number, 0, _HOLDOUT_TILE))
        return (torch.rand((plan.height, plan.width), generator=gen) < HOLDOUT_FRACTION).numpy()

    for k, series in todo_series:

        def load(j: int, series=series) -> torch.Tensor:
            _, plane, scale = run.read(series[j], count=False)
            return filler.to_batch(scale.forward(split_parts(plane, plan)[0]))

        planes = PlaneCache(load, len(series), filler.device, budget)
        holdouts: dict[int, torch.Tensor] = {}

        def holdout(j: int, series=series, holdouts=holdouts) -> torch.Tensor:
            if j not in holdouts:
                holdouts[j] = filler.holdout_batch(held_out(series[j]))[:, :1]
            return holdouts[j]

        if p.adaptive:
            # The mask ratio of the whole stack, from the noise of its middle plane.
            noise, _, network_why = decisions[k]
            changes, why = choose_filling(noise, p.mask_ratio)
            cfiller.mask_ratio = changes["mask_ratio"]
            plan.notes.append(f"auto, stack {k + 1}: {network_why}" + (f"; {why}" if network[k] else ""))
        if not network[k]:
            pass
        elif k in fitted:
            cfiller.network.load_state_dict(fitted[k])
        else:
            gen = torch.Generator(filler.device).manual_seed(plane_seed(p.seed, series[0], part=_FIT_PART))
            for t in cfiller.fit(planes, p.iterations, gen, holdout if p.adaptive else None):
                done += fit_unit
                yield status(series[0], t=t, stage="fit")
            fitted[k] = {name: v.detach().clone() for name, v in cfiller.network.state_dict().items()}
        for j, number in enumerate(series):
            if number not in wanted:
                continue
            index, plane, scale = run.read(number)
            gen = torch.Generator(filler.device).manual_seed(plane_seed(p.seed, number))
            hold = holdout(j) if p.adaptive else None
            if not network[k]:
                batch = None
            elif not tiles or len(tiles) == 1:
                batch = cfiller.predict(planes, j, gen, holdout=hold)
            else:
                batch = torch.zeros_like(planes[j])
                for t_no, t in enumerate(tiles):
                    region = t.slices
                    part = cfiller.predict(
                        planes, j, gen, region, holdout=None if hold is None else hold[(..., *region)]
                    )
                    batch[(slice(None), slice(None), *region)] += part * torch.from_numpy(weights[t_no]).to(part)
            noisy = scale.forward(split_parts(plane, plan)[0])
            result = None if batch is None else filler.from_batch(batch, noisy.shape[0], plan.height, plan.width)
            if p.adaptive:

                def plane_at(i: int, planes=planes, c=noisy.shape[0]) -> np.ndarray:
                    return filler.from_batch(planes[i], c, plan.height, plan.width)

                def probe(noise: NoiseEstimate, j=j, number=number, hold=hold, planes=planes) -> float:
                    # On the first tile of a tiled plane: the slope is a property of the network.
                    region = tiles[0].slices if tiles and len(tiles) > 1 else None
                    gen = torch.Generator(filler.device).manual_seed(plane_seed(p.seed, number) + 1)
                    part = hold if region is None else hold[(..., *region)]
                    return cfiller.probe_slope(planes, j, noise.correlation, noise.sigma, gen, part, region)

                result = _finish_context(
                    filler, noisy, result, held_out(number), number, cfiller.mask_ratio, plane_at, len(series), j,
                    plan.context, probe, planes.twin, decisions[k][2],
                )  # fmt: skip
            run.outputs.write(index, plane, merge_parts(plane, [scale.inverse(result)], plan))
            done += plane_unit
            yield status(number, t=p.iterations, stage="predict", event="plane")
            position += 1


def _finish_context(
    filler: _PlaneFiller,
    noisy: np.ndarray,
    result: np.ndarray | None,
    held: np.ndarray,
    number: int,
    mask_ratio: float,
    plane_at: Callable[[int], np.ndarray],
    count: int,
    index: int,
    context: int,
    probe: Callable[[NoiseEstimate], float],
    twin: Callable[[int, int], bool] | None = None,
    network_reason: str = "",
) -> np.ndarray:
    """Auto preset, context filling: mix the prediction with means of the other planes, fuse with the noisy pixel.

    ``result`` is None where the network did not run: the means and the
    plane's blurs are mixed alone. ``plane_at(i)`` gives plane i of the series (``count`` planes) in [0, 1].
    Under spatially correlated noise the prediction follows the plane's own
    noise with a slope that ``probe(noise)`` measures; it is otherwise
    J-invariant. ``twin(i, j)`` says whether plane j copies plane i (left
    out of the neighbour means). See :func:`~napari_mpid.core.auto.combine`.
    """
    noise = estimate_noise_channels(noisy)
    network = result is not None
    slope = probe(noise) if network and noise.correlation >= CORRELATED else 0.0
    others = neighbour_candidates(plane_at, count, index, context, twin)
    candidates = {"context prediction": (result, slope)} if network else {}
    out, how = combine(noisy, candidates, held, noise, independent=others)
    choice = {
        "plane": number,
        "part": 0,
        "noise_sigma": round(noise.sigma, 5),
        "noise_correlation": round(noise.correlation, 3),
        "mask_ratio": mask_ratio,
        "reason": "context filling" if network else "neighbour planes",
        "network": network,
        "network_reason": network_reason,
        "stopped_at": [filler.params.iterations] if network else [],
        **({"filled_slope": round(slope, 4)} if network and noise.correlation >= CORRELATED else {}),
    }
    filler.choices.append(_record(choice, how, "context prediction" if network else None))
    return out


#: Context filling: random masks per plane at prediction, and the side of the fit's crops.
CONTEXT_PASSES = 8
CONTEXT_CROP = 256
#: ``part`` argument of :func:`plane_seed` for the fit's generator (never a colour part).
_FIT_PART = 7
#: ``tile`` argument of :func:`plane_seed` for the held-out pixels of the auto preset (never a tile).
_HOLDOUT_TILE = 999_983


def denoise_planes(
    image: Any,
    params: FillParams,
    *,
    axes: str | None = None,
    rgb: bool | None = None,
    model: LoadedModel | None = None,
    preview_every: int | None = None,
    out: Any = None,
    noise_out: Any = None,
    noise_map: bool = True,
    planes: Iterable[int] | None = None,
    scales: dict[int, IntensityScale] | None = None,
    fitted: dict[int, dict[str, torch.Tensor]] | None = None,
) -> Generator[Progress, None, DenoiseResult]:
    """Denoise every plane of ``image``; yield progress, return the result.

    Parameters
    ----------
    image : array-like
        Any shape with a Y and an X axis; integer or float dtype. A numpy
        array, or a lazy array (dask, zarr, tifffile's zarr store), which is
        read one plane at a time. Never modified.
    params : FillParams
    axes : str, optional
        One letter per dimension (see :data:`AXIS_LETTERS`); guessed when
        omitted (see :func:`resolve_axes`).
    rgb : bool, optional
        Whether the last axis holds colour samples (only used to guess axes).
    model : LoadedModel, optional
        Pre-loaded model (else ``params.model`` is loaded on ``params.device``);
        it is copied, never changed.
    preview_every : int, optional
        Attach the current plane's state to every n-th Progress.
    out, noise_out : array-like, optional
        Where to write the denoised planes and the noise map (same shape as
        ``image``); numpy arrays are allocated when omitted.
    noise_map : bool
        Compute the noise map (skip it to save memory).
    planes : iterable of int, optional
        Numbers (0-based, C order over the plane axes) of the planes to fill;
        all by default. The others are left untouched in ``out`` (resuming,
        or a share of the work on one Dask worker).
    scales : dict, optional
        Intensity scales per channel from an earlier
        :func:`~napari_mpid.core.scales.fit_scales` (so that parts of one
        stack filled separately share them).
    fitted : dict, optional
        Context filling: the fitted network of each series (by series
        number, from an earlier result's ``fitted``), so that resuming or
        sharding a stack does not fit again and gives the same planes.

    Raises
    ------
    InputError, DeviceError, CheckpointError
        Before any work starts, with a message naming the problem (for a
        lazy input, NaN values are only found when their plane is read).
    OutOfMemory
        The device ran out of memory; the message names the settings to lower.
    """
    try:
        return (
            yield from _denoise(
                image,
                params,
                axes=axes,
                rgb=rgb,
                model=model,
                preview_every=preview_every,
                out=out,
                noise_out=noise_out,
                noise_map=noise_map,
                planes=planes,
                scales=scales,
                fitted=fitted,
            )
        )
    except (RuntimeError, MemoryError) as exc:
        if not _is_out_of_memory(exc):
            raise
        raise OutOfMemory(
            f"out of memory on {params.device} ({type(exc).__name__}); lower the memory for the network "
            "(memory_limit / --memory-limit in GiB) or set a smaller tile_size (--tile-size), "
            "or use fewer stack_planes on a GPU"
        ) from None
