"""Pre-training from folders of images: the glue between files and the core trainer."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .core.devices import resolve_device
from .core.pretrain import PretrainConfig, Pretrainer, PretrainProgress
from .files.formats import PLAIN_SUFFIXES, TIFF_SUFFIXES
from .files.read import read_training_image

__all__ = ["collect_images", "pretrain_iter"]


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
