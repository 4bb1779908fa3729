"""The run modes: plane by plane (the paper), stacks of planes at once, static scenes and context filling."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import torch

from napari_mpid.core.auto import CORRELATED, choose_filling, combine, mean_denoiser, neighbour_candidates
from napari_mpid.core.auto.neighbours import plausible_shift
from napari_mpid.core.auto.registration import estimate_shift, shift_plane
from napari_mpid.core.engine.parts import (
    ABANDON_AT,
    ABANDON_EVIDENCE,
    PlaneFiller,
    held_out_pixels,
    record_choice,
    wants_network,
)
from napari_mpid.core.fill.context import ContextFiller
from napari_mpid.core.filters import convolve_separable, gaussian_kernel
from napari_mpid.core.model.checkpoints import LoadedModel
from napari_mpid.core.noise import NoiseEstimate, estimate_noise_channels
from napari_mpid.core.params import FillParams
from napari_mpid.core.results import Progress
from napari_mpid.core.run.assemble import check_finite, merge_parts, split_parts
from napari_mpid.core.run.normalization import IntensityScale
from napari_mpid.core.run.plan import Plan, memory_budget, plane_seed
from napari_mpid.core.run.scales import channel_of, count_outside
from napari_mpid.core.run.stack import PlaneCache
from napari_mpid.core.run.tiling import blend_weights, plan_tiles
from napari_mpid.core.steps import Returning

__all__ = [
    "CONTEXT_CROP",
    "CONTEXT_PASSES",
    "STATIC_EXCESS",
    "Run",
    "context_mode",
    "plane_by_plane",
    "stack_mode",
    "static_mode",
]

#: Context filling: random masks per plane at prediction, and the side of the fit's crops.
CONTEXT_PASSES = 8
CONTEXT_CROP = 256
#: ``part`` argument of :func:`plane_seed` for the fit's generator (never a colour part).
_FIT_PART = 7


class Run:
    """What the loops of one run share: the plan, the source, scales, outputs, progress."""

    def __init__(self, plan, source, scales, outputs, filler, numbers, preview_every) -> None:
        self.plan, self.source, self.scales, self.outputs = plan, source, scales, outputs
        self.filler: PlaneFiller = filler
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


def plane_by_plane(run: Run) -> Generator[Progress, None, None]:
    """The paper's filling: every plane (and colour part, and tile) with its own fine-tuning."""
    plan, filler, iterations = run.plan, run.filler, run.params.iterations
    for position, number in enumerate(run.numbers):
        index, plane, scale = run.read(number)
        parts = split_parts(plane, plan)
        filled: list[np.ndarray] = []
        for part_no, part in enumerate(parts):
            fill = Returning(filler.fill(scale.forward(part), number, part_no))
            for tile, t in fill:
                shown = run.preview(scale, filled, parts[part_no + 1 :], plane) if run.wants_preview(t) else None
                yield run.progress(position, number, t, tile=tile, part=part_no + 1, preview=shown)
            filled.append(scale.inverse(fill.result))
        run.outputs.write(index, plane, merge_parts(plane, filled, plan))
        yield run.progress(position, number, iterations, tile=len(plan.tiles), part=plan.parts, event="plane")


def stack_mode(run: Run) -> Generator[Progress, None, None]:
    """Planes with their own weights in one set of kernels (GPU); every plane gets the masks it gets alone."""
    plan, filler, numbers = run.plan, run.filler, run.numbers
    for first in range(0, len(numbers), plan.stack):
        chunk = numbers[first : first + plan.stack]
        loaded = [run.read(n) for n in chunk]
        fill = Returning(
            filler.fill_stack([scale.forward(split_parts(plane, plan)[0]) for _, plane, scale in loaded], chunk)
        )
        for t in fill:
            shown = run.preview(loaded[0][2], [], [], loaded[0][1]) if run.wants_preview(t) else None
            yield run.progress(first, chunk[0], t, preview=shown, group=len(chunk))
        for (index, plane, scale), result in zip(loaded, fill.result):
            run.outputs.write(index, plane, merge_parts(plane, [scale.inverse(result)], plan))
        yield run.progress(
            first, chunk[0], run.params.iterations, group=len(chunk), event="plane", tile=len(plan.tiles),
            part=plan.parts,
        )  # fmt: skip


#: ``static_scene``: a plane whose difference to the (brightness-matched) mean of its series
#: exceeds this many times what its noise explains is reported: the scene may have moved
#: (:func:`static_excess`, the largest of a series). Set between still and drifting series
#: (docs/constants.md).
STATIC_EXCESS = 1.6
#: ``static_scene``: an exposure is moved onto the series' first only where moving it leaves
#: less than this share of its (lightly blurred) mismatch in place (:func:`exposure_shift`;
#: the values measured on drifting and still FMD series: docs/constants.md).
DRIFT_EVIDENCE = 0.5


def static_mode(run: Run) -> Generator[Progress, None, None]:
    """Repeated exposures of one scene: every series averaged, its mean filled as one plane, written to all.

    Exposures of a scene that drifted (stage or sample drift between
    frames) are moved onto the series' first plane before they are averaged
    (:func:`exposure_shift`), and the filled mean is moved back onto each of
    them when it is written: motion-corrected frame averaging. The planes
    are read twice (summed, then compared and written one by one) so that a
    long series never has to fit in memory.
    """
    plan, filler, iterations = run.plan, run.filler, run.params.iterations
    letters = [a for a in plan.axes if a not in "YXS"]
    wanted = set(run.numbers)
    position = 0

    def exposure(number: int, count: bool) -> tuple[tuple[int, ...], np.ndarray, IntensityScale, list[np.ndarray]]:
        index, plane, scale = run.read(number, count=count)
        return index, plane, scale, [scale.forward(part) for part in split_parts(plane, plan)]

    def moved(parts: list[np.ndarray], shift: tuple[float, float] | None) -> list[np.ndarray]:
        return parts if shift is None else [shift_plane(part, shift) for part in parts]

    for series in plan.series:
        if not wanted.intersection(series):
            continue
        sums: list[np.ndarray] = []
        reference: np.ndarray | None = None
        shifts: dict[int, tuple[float, float] | None] = {}
        copies: dict[str, int] = {}  # exposures by content: a copied frame adds no independent noise
        for number in series:
            *_, parts = exposure(number, count=True)
            digest = hashlib.sha1(b"".join(np.ascontiguousarray(part).tobytes() for part in parts)).hexdigest()
            copies[digest] = copies.get(digest, 0) + 1
            image = sum(part.sum(axis=0) for part in parts)
            shifts[number] = None if reference is None else exposure_shift(reference, image)
            reference = image if reference is None else reference
            parts = moved(parts, shifts[number])
            sums = parts if not sums else [total + part for total, part in zip(sums, parts)]
        means = [total / len(series) for total in sums]
        # The mean's noise variance over one exposure's: sum of squared copy counts over N^2 (1/N if none repeats).
        members = len(series) ** 2 / sum(c * c for c in copies.values())
        filled: list[np.ndarray] = []
        for part_no, mean in enumerate(means):
            fill = Returning(filler.fill(mean, series[0], part_no, members=members))
            for tile, t in fill:
                yield run.progress(position, series[0], t, tile=tile, part=part_no + 1)
            filled.append(fill.result)
        changed = {}
        for number in series:
            index, plane, scale, parts = exposure(number, count=False)
            shift = shifts[number]
            excess = static_excess(
                moved(parts, shift), means, len(series), lambda part, n=number: filler.noise_of(part, n)
            )
            if excess > STATIC_EXCESS:
                changed[" ".join(f"{a}={i}" for a, i in zip(letters, index))] = excess
            if number in wanted:
                back = None if shift is None else (-shift[0], -shift[1])
                result = [scale.inverse(f) for f in moved(filled, back)]
                run.outputs.write(index, plane, merge_parts(plane, result, plan))
                yield run.progress(position, number, iterations, tile=len(plan.tiles), part=plan.parts, event="plane")
                position += 1
        drifted = {number: shift for number, shift in shifts.items() if shift is not None}
        if drifted:
            largest = max(max(abs(dy), abs(dx)) for dy, dx in drifted.values())
            plan.notes.append(
                f"static scene: {len(drifted)} of {len(series)} exposures had drifted (up to {largest:.1f} px) "
                "and were moved onto the first before averaging"
            )
        if changed:
            shown = ", ".join(list(changed)[:5]) + (", ..." if len(changed) > 5 else "")
            run.warnings.append(
                f"static_scene: {len(changed)} of {len(series)} planes differ from the mean of their series by up "
                f"to {max(changed.values()):.1f}x their noise variance ({shown}): the scene may not be static, "
                "and the result shows the mean"
            )


def exposure_shift(reference: np.ndarray, plane: np.ndarray) -> tuple[float, float] | None:
    """The shift that moves an exposure onto the series' reference, or None where it is not worth moving.

    As for the neighbour means of :func:`~napari_mpid.core.auto.neighbour_candidates`,
    only shifts that :func:`~napari_mpid.core.auto.neighbours.plausible_shift`
    accepts are applied. Unlike there, no risk estimate weighs the moved
    plane against the plane as it is, so a shift must also show that the
    exposure moved: moved, its :func:`drift_mismatch` to the reference must
    fall below :data:`DRIFT_EVIDENCE` of what it was in place. On weak or
    low-contrast planes the measured shift can be wrong by pixels, and then
    moving the plane does not bring it closer.
    """
    shift = estimate_shift(reference, plane)
    if not plausible_shift(shift, reference.shape):
        return None
    moved = drift_mismatch(reference, [plane, shift_plane(plane, shift)])
    return shift if moved[1] < DRIFT_EVIDENCE * moved[0] else None


def drift_mismatch(reference: np.ndarray, planes: list[np.ndarray]) -> list[float]:
    """How far each of ``planes`` is from ``reference``: both blurred (sigma 1.5), brightness matched, borders off.

    The blur leaves structure and takes most of the noise, so the figure
    follows misalignment; an eighth of the side is left out at each border,
    where moving a plane reflects its edge.
    """
    kernel = gaussian_kernel(1.5)
    margin = min(reference.shape[-2:]) // 8
    inner = (slice(margin, -margin), slice(margin, -margin))
    a = convolve_separable(reference, kernel)[inner]
    out = []
    for plane in planes:
        b = convolve_separable(plane, kernel)[inner]
        gain = float(np.sum(a * b) / max(float(np.sum(b * b)), 1e-30))
        out.append(float(np.mean((a - gain * b) ** 2)))
    return out


def static_excess(
    parts: list[np.ndarray],
    means: list[np.ndarray],
    count: int,
    noise_of: Callable[[np.ndarray], NoiseEstimate] = estimate_noise_channels,
) -> float:
    """How much more a plane differs from its series' mean (scaled to its brightness) than noise would make it.

    For exposures of one scene with independent noise of variance v, a plane
    minus the mean of all ``count`` differs by ``v (1 - 1/count)``; the ratio
    of the measured difference to that (the plane's noise from
    :func:`~napari_mpid.core.noise.estimate_noise`) is ~1, and grows with
    whatever moved or changed. ``noise_of(part)``: a part's noise (estimated, or a run's noise profile).
    """
    excess = []
    for part, mean in zip(parts, means):
        gain = float(np.sum(part * mean) / max(float(np.sum(mean * mean)), 1e-12))
        variance = float(np.mean(noise_of(part).variance(part))) * (1 - 1 / count)
        excess.append(float(np.mean((part - gain * mean) ** 2)) / max(variance, 1e-12))
    return max(excess)


def context_mode(run: Run, model: LoadedModel, fitted: dict[int, dict[str, torch.Tensor]]):
    """Context filling: per series, fit one network with neighbour planes, then predict its planes."""
    plan, filler, p = run.plan, run.filler, run.params
    f = p.pd_factor
    wanted = set(run.numbers)
    sub_h, sub_w = -(-plan.height // f), -(-plan.width // f)
    tile = max(p.tile_size // f, model.network.min_size)
    tiles = plan_tiles(sub_h, sub_w, tile, p.tile_overlap // f)
    weights = blend_weights(tiles, sub_h, sub_w) if len(tiles) > 1 else []
    crop = min(CONTEXT_CROP, tile)
    settings = filler.settings.replace(shared_mask=plan.samples == 0 and model.network.channels == 3)
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
            noise = filler.noise_of(middle, series[len(series) // 2])
            decisions[k] = (noise, *wants_network(p, middle, noise))
    network = {k: not p.adaptive or decisions[k][1] for k, _ in todo_series}
    abandoned: dict[int, int] = {}
    total = sum((0 if k in fitted or not network[k] else p.iterations) * fit_unit for k, _ in todo_series)
    total += len(wanted) * plane_unit
    done, position = 0.0, 0
    budget = int(min(2**30, max(64 * 2**20, 0.25 * memory_budget(p, filler.device)[0])))

    def status(number: int, **extra: Any) -> Progress:
        return run.progress(position, number, extra.pop("t", 0), done=done, total=total, **extra)

    def held_out(number: int) -> np.ndarray:
        return held_out_pixels(p.seed, number, (plan.height, plan.width))

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

        mask_ratio = p.mask_ratio
        if p.adaptive:
            # The mask ratio of the whole stack, from the noise of its middle plane.
            noise, _, network_why = decisions[k]
            changes, why = choose_filling(noise, p.mask_ratio)
            mask_ratio = changes["mask_ratio"]
            plan.notes.append(f"auto, stack {k + 1}: {network_why}" + (f"; {why}" if network[k] else ""))
        cfiller = ContextFiller(
            model.network,
            model.state,
            plan.context,
            settings.replace(mask_ratio=mask_ratio),
            crop_size=crop,
            passes=CONTEXT_PASSES,
        )
        if not network[k]:
            pass
        elif k in fitted:
            cfiller.network.load_state_dict(fitted[k])
        else:
            gen = torch.Generator(filler.device).manual_seed(plane_seed(p.seed, series[0], part=_FIT_PART))
            # As for single planes (ABANDON_AT): part of the way, does the stack's network earn
            # anything on its middle plane? Not where the user asked for the network.
            # Tiles of the pixel-shuffled grid are regions of the plane only without shuffling.
            check = p.adaptive and p.network_use == "auto" and ABANDON_AT > 0 and (len(tiles) <= 1 or f == 1)
            check_at = max(1, round(ABANDON_AT * p.iterations)) if check else 0
            regions = [t.slices for t in tiles] if len(tiles) > 1 else None
            fit = cfiller.fit(planes, p.iterations, gen, holdout if p.adaptive else None)
            for t in fit:
                done += fit_unit
                yield status(series[0], t=t, stage="fit")
                if t == check_at and not _context_earns(
                    filler, cfiller, planes, series, holdout, held_out, plan, regions
                ):
                    fit.close()
                    network[k], abandoned[k] = False, t
                    done += (p.iterations - t) * fit_unit
                    plan.notes.append(f"auto, stack {k + 1}: network abandoned at iteration {t}: it earned nothing")
                    break
            if network[k]:
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

                def probe(noise: NoiseEstimate, j=j, number=number, hold=hold, planes=planes, cfiller=cfiller) -> float:
                    # On the first tile of a tiled plane: the slope is a property of the network.
                    region = tiles[0].slices if tiles and len(tiles) > 1 else None
                    gen = torch.Generator(filler.device).manual_seed(plane_seed(p.seed, number) + 1)
                    part = hold if region is None else hold[(..., *region)]
                    return cfiller.probe_slope(planes, j, noise.correlation, noise.sigma, gen, part, region)

                result = _finish_context(
                    filler, noisy, result, held_out(number), number, mask_ratio, plane_at, len(series), j,
                    plan.context, probe, planes.twin, decisions[k][2], abandoned.get(k), k + 1,
                )  # fmt: skip
            run.outputs.write(index, plane, merge_parts(plane, [scale.inverse(result)], plan))
            done += plane_unit
            yield status(number, t=p.iterations, stage="predict", event="plane")
            position += 1


def _context_earns(
    filler: PlaneFiller,
    cfiller: ContextFiller,
    planes: PlaneCache,
    series: list[int],
    holdout: Callable[[int], torch.Tensor],
    held_out: Callable[[int], np.ndarray],
    plan: Plan,
    regions: list[tuple[slice, slice]] | None = None,
) -> bool:
    """Whether the stack's network, as fitted so far, gets weight in its middle plane's mix.

    :meth:`PlaneFiller.filling_earns` for context filling: the middle plane
    is predicted with its held-out pixels hidden and mixed as
    :func:`_finish_context` mixes every plane (neighbour means included),
    without the evidence shrinkage. A plane predicted in tiles (``regions``)
    is judged tile by tile, each tile with its crop of the neighbours' means;
    the network earns if it does on any tile.
    """
    p, j = plan.params, len(series) // 2
    number = series[j]
    gen = torch.Generator(filler.device).manual_seed(plane_seed(p.seed, number) + 2)
    hold = holdout(j)
    c = 3 if plan.samples else 1  # the first part of split_parts: context filling runs colour as one part
    everywhere = (slice(None), slice(None))
    full: dict[int, np.ndarray] = {}

    def whole(i: int) -> np.ndarray:
        if i not in full:
            full[i] = filler.from_batch(planes[i], c, plan.height, plan.width)
        return full[i]

    noise = filler.noise_of(whole(j), number)
    held = held_out(number)
    for region in regions or [everywhere]:
        rows, cols = region

        def plane_at(i: int, rows=rows, cols=cols) -> np.ndarray:
            return whole(i)[:, rows, cols]

        noisy = plane_at(j)
        part = None if region is everywhere else region
        piece = hold if part is None else hold[(..., *region)]
        predicted = cfiller.predict(planes, j, gen, part, holdout=piece)
        result = filler.from_batch(predicted, c, *noisy.shape[1:])
        slope = 0.0
        if noise.correlation >= CORRELATED:
            probe = torch.Generator(filler.device).manual_seed(plane_seed(p.seed, number) + 3)
            slope = cfiller.probe_slope(planes, j, noise.correlation, noise.sigma, probe, piece, part)
        others = neighbour_candidates(plane_at, len(series), j, plan.context, planes.twin, mean_denoiser(noise))
        _, how = combine(
            noisy, {"context prediction": (result, slope)}, held[rows, cols], noise, evidence=ABANDON_EVIDENCE,
            independent=others,
        )  # fmt: skip
        if how.held_out_used and how.weights.get("context prediction", 0.0) > 0:
            return True
    return False


def _finish_context(
    filler: PlaneFiller,
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
    abandoned_at: int | None = None,
    stack: int | None = None,
) -> np.ndarray:
    """Auto preset, context filling: mix the prediction with means of the other planes, fuse with the noisy pixel.

    ``result`` is None where the network did not run: the means and the
    plane's blurs are mixed alone. ``plane_at(i)`` gives plane i of the series (``count`` planes) in [0, 1].
    Under spatially correlated noise the prediction follows the plane's own
    noise with a slope that ``probe(noise)`` measures; it is otherwise
    J-invariant. ``twin(i, j)`` says whether plane j copies plane i (left
    out of the neighbour means). See :func:`~napari_mpid.core.auto.combine`.
    """
    noise = filler.noise_of(noisy, number)
    network = result is not None
    slope = probe(noise) if network and noise.correlation >= CORRELATED else 0.0
    others = neighbour_candidates(plane_at, count, index, context, twin, mean_denoiser(noise))
    candidates = {"context prediction": (result, slope)} if network else {}
    out, how = combine(noisy, candidates, held, noise, independent=others)
    choice = {
        "plane": number,
        "part": 0,
        "noise_sigma": round(noise.sigma, 5),
        "noise_correlation": round(noise.correlation, 3),
        "mask_ratio": mask_ratio,
        "reason": "context filling" if network else "neighbour planes",
        # An abandoned stack ran the network (up to abandoned_at) although no prediction enters here.
        "network": network or bool(abandoned_at),
        "network_reason": network_reason,
        "stopped_at": [filler.params.iterations] if network else [],
        **({"filled_slope": round(slope, 4)} if network and noise.correlation >= CORRELATED else {}),
        **({"abandoned_at": abandoned_at} if abandoned_at else {}),
        **({"stack": stack} if stack is not None else {}),
    }
    filler.choices.append(record_choice(choice, how, "context prediction" if network else None))
    return out
