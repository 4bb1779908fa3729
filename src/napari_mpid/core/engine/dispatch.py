"""The entry point of a run: validate and plan, pick a run mode, report (:func:`denoise_planes`)."""

from __future__ import annotations

import copy
import time
from collections.abc import Generator, Iterable
from typing import Any

import numpy as np
import torch

from napari_mpid.core.engine.modes import Run, context_mode, plane_by_plane, stack_mode, static_mode
from napari_mpid.core.engine.parts import PlaneFiller
from napari_mpid.core.errors import InputError, OutOfMemory
from napari_mpid.core.model.checkpoints import LoadedModel, load_model
from napari_mpid.core.noise_profile import load_profile, profile_notes
from napari_mpid.core.params import FillParams
from napari_mpid.core.results import DenoiseResult, Progress
from napari_mpid.core.run.assemble import Outputs, check_finite
from napari_mpid.core.run.devices import resolve_device
from napari_mpid.core.run.normalization import IntensityScale
from napari_mpid.core.run.plan import make_plan
from napari_mpid.core.run.scales import fit_scales

__all__ = ["denoise_planes"]


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
        :func:`~napari_mpid.core.run.scales.fit_scales` (so that parts of one
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
        # The whole run: the device can run out of memory in any plane, not only the first.
        source = _as_source(image)
        device = resolve_device(params.device)
        profile = load_profile(params.noise_profile) if params.noise_profile is not None else None
        model = load_model(params.model, device) if model is None else _private_model(model, device)
        plan = make_plan(source.shape, source.dtype, params, model, device, axes=axes, rgb=rgb)
        if profile is not None and plan.samples:
            # A colour camera's channels differ in noise (FMD's wide-field G against B and R).
            raise InputError(
                "a noise profile holds one channel's noise and this image has colour samples (S): denoise "
                "without the profile, or one colour at a time with a profile of each"
            )
        if isinstance(source, np.ndarray):
            check_finite(source, "the image")
        numbers = list(range(len(plan.planes))) if planes is None else sorted(set(int(n) for n in planes))
        if numbers and not 0 <= numbers[0] <= numbers[-1] < len(plan.planes):
            raise InputError(f"plane numbers must be in [0, {len(plan.planes)}), got {numbers[0]}..{numbers[-1]}")
        if scales is None:
            scales = fit_scales(source, plan, plan.params.normalization, plan.notes)
        outputs = Outputs(plan, out, noise_out, with_noise_map=noise_map, partial=len(numbers) < len(plan.planes))
        filler = PlaneFiller(model, plan, device)
        if profile is not None:
            filler.use_profile(profile, scales)
            plan.notes.extend(profile_notes(profile, params.noise_profile, source.dtype))
        run = Run(plan, source, scales, outputs, filler, numbers, preview_every)
        if plan.params.static_scene:
            yield from static_mode(run)
        elif plan.series:
            fitted = dict(fitted or {})
            yield from context_mode(run, model, fitted)
        elif plan.stack > 1 and not plan.params.adaptive:
            # Stack mode fills planes with the paper's loop only; the auto preset's
            # per-plane choices (hold-out, stopping, mix) need one plane at a time.
            yield from stack_mode(run)
        else:
            yield from plane_by_plane(run)

        p = plan.params
        warnings = [*run.warnings, *run.filler.warnings]
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
    except (RuntimeError, MemoryError) as exc:
        if not _is_out_of_memory(exc):
            raise
        raise OutOfMemory(
            f"out of memory on {params.device} ({type(exc).__name__}); lower the memory for the network "
            "(memory_limit / --memory-limit in GiB) or set a smaller tile_size (--tile-size), "
            "or use fewer stack_planes on a GPU"
        ) from None
