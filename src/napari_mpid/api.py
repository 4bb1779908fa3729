"""The Python API: a thin layer over :mod:`napari_mpid.core`.

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

from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np

from napari_mpid.core.engine import DenoiseResult, Progress, denoise_planes
from napari_mpid.core.model.checkpoints import LoadedModel
from napari_mpid.core.model.checkpoints import load_model as _load_model
from napari_mpid.core.params import DEFAULT_PRESET, FillParams, preset
from napari_mpid.core.run.devices import resolve_device
from napari_mpid.core.steps import run_to_end

__all__ = ["FillParams", "denoise", "denoise_iter", "load_model", "preset", "pretrain"]


def load_model(name_or_path: str | Path = "real-noise", device: str = "auto") -> LoadedModel:
    """Load a bundled model ("real-noise", "pixel-independent") or a checkpoint file.

    Loading once and passing ``model=`` to :func:`denoise` saves the load when
    denoising many images.
    """
    return _load_model(name_or_path, resolve_device(device))


def denoise_iter(
    image: np.ndarray,
    params: FillParams | None = None,
    *,
    axes: str | None = None,
    rgb: bool | None = None,
    model: LoadedModel | None = None,
    preview_every: int | None = None,
) -> Generator[Progress, None, DenoiseResult]:
    """Generator form of :func:`denoise`: yields :class:`Progress`, returns the result.

    Close the generator (or stop iterating) to cancel between two iterations;
    the input is never modified and no partial result is produced.
    """
    return denoise_planes(
        image, params or preset(DEFAULT_PRESET), axes=axes, rgb=rgb, model=model, preview_every=preview_every
    )


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
    from napari_mpid.core.model.pretrain import PretrainConfig
    from napari_mpid.training import pretrain_iter

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
