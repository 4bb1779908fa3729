"""The Python API, and the only door to :mod:`napari_mpid.core` for the CLI and the napari widget.

Scripts call :func:`denoise` (or :func:`denoise_iter` to watch progress and
cancel), :func:`load_model` and :func:`pretrain`. The CLI and the widget
import everything they use from the core through this module (the
parameter, result and error types also from :mod:`~napari_mpid.core.params`,
:mod:`~napari_mpid.core.results` and :mod:`~napari_mpid.core.errors`), so the
core can be rearranged without touching them; ``tests/test_architecture.py``
checks it.

Examples
--------
>>> import numpy as np
>>> from napari_mpid import denoise, preset
>>> stack = np.random.default_rng(0).poisson(20, (2, 96, 96)).astype(np.uint16)
>>> result = denoise(stack, preset("fast", iterations=2), axes="ZYX")
>>> result.denoised.shape, result.noise_map.shape
((2, 96, 96), (2, 96, 96))
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_mpid.core.engine import denoise_planes
from napari_mpid.core.engine.estimate import (
    calibrate_for,
    calibration_for,
    estimate_seconds,
    estimate_text,
    eta_tracker,
    format_duration,
    network_for,
    table_seconds,
)
from napari_mpid.core.engine.timing import Calibration, EtaTracker, calibration_key
from napari_mpid.core.errors import (
    USER_ERRORS,
    CheckpointError,
    DeviceError,
    InputError,
    OutOfMemory,
    ParameterError,
)
from napari_mpid.core.model.checkpoints import LoadedModel, bundled_models
from napari_mpid.core.model.checkpoints import load_model as _load_model
from napari_mpid.core.model.pretrain import PretrainConfig, Pretrainer, PretrainProgress
from napari_mpid.core.noise_profile import NoiseProfile, load_profile, measure_profile
from napari_mpid.core.params import DEFAULT_PRESET, FillParams, preset
from napari_mpid.core.results import DenoiseResult, Progress
from napari_mpid.core.run.axes import AXIS_LETTERS, axes_from_labels, resolve_axes
from napari_mpid.core.run.devices import available_devices, resolve_device
from napari_mpid.core.run.normalization import IntensityScale
from napari_mpid.core.run.plan import Plan, make_plan
from napari_mpid.core.steps import run_to_end
from napari_mpid.files.formats import PLAIN_SUFFIXES, TIFF_SUFFIXES
from napari_mpid.files.read import read_training_image

__all__ = [  # noqa: RUF022 (grouped by who uses them)
    # what scripts use
    "DenoiseResult",
    "FillParams",
    "Progress",
    "NoiseProfile",
    "denoise",
    "denoise_iter",
    "exposure_planes",
    "list_models",
    "load_model",
    "load_profile",
    "measure_noise_profile",
    "plan",
    "preset",
    "pretrain",
    "pretrain_iter",
    # errors that name a problem the user can fix
    "USER_ERRORS",
    "CheckpointError",
    "DeviceError",
    "InputError",
    "OutOfMemory",
    "ParameterError",
    # what the widget shows before and during a run
    "AXIS_LETTERS",
    "Calibration",
    "EtaTracker",
    "LoadedModel",
    "Plan",
    "available_devices",
    "axes_from_labels",
    "calibrate_for",
    "calibration_for",
    "calibration_key",
    "estimate_seconds",
    "estimate_text",
    "eta_tracker",
    "format_duration",
    "network_for",
    "resolve_axes",
    "resolve_device",
    "table_seconds",
]


def load_model(name_or_path: str | Path = "real-noise", device: str = "auto") -> LoadedModel:
    """Load a bundled model ("real-noise", "pixel-independent") or a checkpoint file.

    Loading once and passing ``model=`` to :func:`denoise` saves the load when
    denoising many images.
    """
    return _load_model(name_or_path, resolve_device(device))


def denoise_iter(
    image: Any,
    params: FillParams | None = None,
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
    """Generator form of :func:`denoise`: yields :class:`Progress`, returns the result.

    Close the generator (or stop iterating) to cancel between two iterations;
    the input is never modified and no partial result is produced. The
    keyword arguments after ``preview_every`` (outputs to write into, a share
    of the planes, scales and fitted networks of an earlier run) are those of
    :func:`napari_mpid.core.engine.denoise_planes`, for the widget and batch
    work; ``image`` may be a lazy array, read one plane at a time.
    """
    return denoise_planes(
        image,
        params or preset(DEFAULT_PRESET),
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


def plan(
    shape: Sequence[int],
    dtype: Any,
    params: FillParams | None = None,
    *,
    model: LoadedModel | None = None,
    device: torch.device | str | None = None,
    axes: str | None = None,
    rgb: bool | None = None,
) -> Plan:
    """What a run on an array of this shape and dtype would do, without doing it.

    The parameters as they would be resolved (mask ratio, tiles, stack
    planes, context), the planes and series, and the notes that explain the
    automatic choices. Raises the errors of :func:`denoise` (a message naming
    the problem) before any work. ``model`` is loaded from ``params.model``
    when not given (on the CPU: planning needs its architecture only).
    """
    params = params or preset(DEFAULT_PRESET)
    device = resolve_device(params.device) if device is None else torch.device(device)
    model = model if model is not None else _load_model(params.model, torch.device("cpu"))
    return make_plan(tuple(shape), np.dtype(dtype), params, model, device, axes=axes, rgb=rgb)


def list_models() -> dict[str, dict[str, str]]:
    """The bundled models by name: their file, SHA-256 and a one-line summary."""
    return bundled_models()


def denoise(
    image: np.ndarray,
    params: FillParams | None = None,
    *,
    axes: str | None = None,
    rgb: bool | None = None,
    model: LoadedModel | None = None,
    progress: bool = False,
) -> DenoiseResult:
    """Denoise an image or stack with MPI iterative filling.

    Parameters
    ----------
    image : ndarray
        2D plane, RGB image or N-D stack (any integer or float dtype).
    params : FillParams, optional
        Defaults to ``preset("auto")`` (real-noise model; mask ratio, stopping and the
        final mix chosen per plane from its noise; neighbour planes for Z/T stacks).
    axes : str, optional
        One letter per dimension from "TZCYXSQ", e.g. "ZYX" or "TCYX"; every
        axis other than Y, X (and S, colour samples) is processed plane by plane.
    rgb : bool, optional
        Treat the last axis as colour samples when axes are guessed.
    model : LoadedModel, optional
        A model from :func:`load_model`; else ``params.model`` is loaded.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    DenoiseResult
        ``denoised`` and ``noise_map`` with the input's shape, float32, in
        the input's intensity units.
    """
    gen = denoise_iter(image, params, axes=axes, rgb=rgb, model=model)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        # In percent of the whole run: iterations alone do not measure it when
        # filling stops early (auto preset) or a stack is fitted once (context).
        bar = tqdm(
            total=100,
            unit="%",
            desc="denoising",
            bar_format="{l_bar}{bar}| {n}/{total}% [{elapsed}<{remaining}{postfix}]",
        )

    def show(step: Progress) -> None:
        reached = int(step.fraction * 100)
        if reached > bar.n:
            bar.update(reached - bar.n)
        bar.set_postfix_str(f"{step.stage} plane {step.plane}/{step.planes}", refresh=False)

    try:
        result = run_to_end(gen, show if bar is not None else None)
        if bar is not None and bar.n < bar.total:
            bar.update(bar.total - bar.n)
        return result
    finally:
        if bar is not None:
            bar.close()


def exposure_planes(data: Any, axes: str) -> np.ndarray:
    """The ``(N, Y, X)`` planes of ``data`` (axes ``axes``): every axis but Y and X holds exposures.

    Raises
    ------
    InputError
        Axes that do not fit the data, or channels (C) or colour samples (S):
        a noise profile holds one camera setting.
    """
    array = np.asarray(data)
    letters = resolve_axes(array.shape, axes)
    if "C" in letters or "S" in letters:
        raise InputError(
            f"the exposures have {'colour samples' if 'S' in letters else 'channels'} (axes {letters}): "
            "measure the noise profile on one channel at a time"
        )
    array = np.moveaxis(array, [letters.index("Y"), letters.index("X")], [-2, -1])
    return array.reshape(-1, *array.shape[-2:])


def measure_noise_profile(frames: np.ndarray | Sequence[np.ndarray], axes: str | None = None) -> NoiseProfile:
    """Measure a camera's noise from repeated exposures of one unchanging field.

    Parameters
    ----------
    frames : ndarray ``(N, Y, X)`` or sequence of ``(Y, X)`` arrays
        At least two exposures with the settings of the data to denoise
        (exposure, gain, binning, averaging), in its units; nothing in the
        field may move or bleach unevenly between them.
    axes : str, optional
        One letter per dimension of ``frames`` (e.g. "TYX", "YXT"): every
        axis but Y and X then holds exposures. Channels (C) and colour
        samples (S) are refused: one camera setting per profile.

    Returns
    -------
    NoiseProfile
        Its noise-level line and autocorrelation; ``.save(path)`` writes the
        JSON that ``FillParams(noise_profile=path)`` (auto preset) reads.

    Raises
    ------
    InputError
        Fewer than two frames, frames of different shapes, frames too small,
        non-finite values, or identical frames.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_mpid.api import measure_noise_profile
    >>> rng = np.random.default_rng(0)
    >>> field = rng.uniform(100, 1000, (64, 64))
    >>> frames = [rng.poisson(field) for _ in range(3)]
    >>> round(measure_noise_profile(frames).gain, 1)  # Poisson counts: variance = intensity
    1.0
    """
    if axes is not None:
        return measure_profile(exposure_planes(frames, axes))
    if isinstance(frames, np.ndarray):
        return measure_profile(frames)
    planes = [np.asarray(f) for f in frames]
    if len({p.shape for p in planes}) > 1:
        raise InputError(f"calibration frames must share one shape, got {sorted({p.shape for p in planes})}")
    return measure_profile(np.stack(planes) if planes else np.empty((0, 0, 0)))


def pretrain(
    folders: list[str | Path],
    output: str | Path,
    *,
    device: str = "auto",
    resume: str | Path | None = None,
    time_limit: float | None = None,
    until: int | None = None,
    progress: bool = True,
    **config: Any,
) -> Path:
    """Masked pre-training on folders of clean images; returns the weights file.

    ``config`` takes the fields of :class:`napari_mpid.core.model.pretrain.PretrainConfig`
    (channels, multi_channel_mask, mask_ratio_min, mask_ratio_max, crop_size,
    batch_size, steps, ...). ``output`` receives a resumable checkpoint and
    ``<stem>.weights.pt`` the weights with their metadata, which
    :func:`load_model` and the plugin accept.
    """
    cfg = PretrainConfig(**config)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, unit="step", desc="pre-training")
    last_val = None
    for step in pretrain_iter(folders, output, cfg, device=device, resume=resume, time_limit=time_limit, until=until):
        if bar is not None:
            bar.n = step.step
            if step.validation_psnr is not None:
                last_val = step.validation_psnr
            bar.set_postfix(loss=f"{step.loss:.2f}", val_psnr=f"{last_val:.2f}" if last_val else "-")
            bar.refresh()
    if bar is not None:
        bar.close()
    output = Path(output)
    return output.with_name(output.stem + ".weights.pt")


def collect_images(folders: Sequence[str | Path], min_size: int) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Read every image (png/tif/jpg, gray or colour, 8/16-bit) under ``folders``.

    Images smaller than ``min_size`` on a side are skipped and counted.

    Returns
    -------
    images : list of ndarray
        float32 in [0, 1].
    info : dict
        Per folder: resolved path, images used, images skipped.
    """
    images: list[np.ndarray] = []
    info: dict[str, Any] = {"folders": []}
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: not a folder")
        used = skipped = 0
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() not in TIFF_SUFFIXES + PLAIN_SUFFIXES:
                continue
            image = read_training_image(path)
            if min(image.shape[:2]) < min_size:
                skipped += 1
                continue
            images.append(image)
            used += 1
        info["folders"].append({"path": folder.name, "images": used, "skipped_too_small": skipped})
    if not images:
        raise ValueError(f"no usable images (at least {min_size}x{min_size}) in {', '.join(map(str, folders))}")
    info["images"] = len(images)
    return images, info


def pretrain_iter(
    folders: Sequence[str | Path],
    output: str | Path,
    config: PretrainConfig,
    *,
    device: str = "auto",
    resume: str | Path | None = None,
    time_limit: float | None = None,
    until: int | None = None,
) -> Iterator[PretrainProgress]:
    """Pre-train (or resume) and write checkpoints to ``output``; yields progress.

    A resumable checkpoint is written every ``config.checkpoint_every`` steps
    and at the end, plus ``<output stem>.weights.pt`` without the training
    state (the file to ship or point the plugin at). ``until`` stops at that
    step and ``time_limit`` after that many seconds; the cosine schedule still
    spans ``config.steps``, so a later resume continues it exactly.
    """
    output = Path(output)
    images, info = collect_images(folders, config.crop_size)
    trainer = Pretrainer(images, config, resolve_device(device), data_info=info)
    if resume is not None:
        trainer.resume(resume)
    for progress in trainer.run(until=until, time_limit=time_limit):
        if trainer.step % config.checkpoint_every == 0:
            trainer.save(output)
        yield progress
    trainer.save(output)
    trainer.save(output.with_name(output.stem + ".weights.pt"), with_training_state=False)
