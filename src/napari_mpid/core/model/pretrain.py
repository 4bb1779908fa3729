"""Masked pre-training (MPI, Sec. 3.1): teach the network to fill dropped pixels.

Clean images, random crops with flips and 90-degree rotations, random
keep-masks, and a loss on the dropped pixels only. Everything random comes
from seeded ``torch.Generator`` objects whose states are saved in the
checkpoint, so a resumed run continues exactly where it stopped. The whole
training set is held on the compute device as tensors, so the GPU never waits
for a data loader.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_mpid.core.masks import draw_keep_mask
from napari_mpid.core.model.checkpoints import CheckpointError, save_checkpoint
from napari_mpid.core.model.network import SkipNetwork, network_input
from napari_mpid.core.version import __version__

__all__ = ["PretrainConfig", "PretrainProgress", "Pretrainer", "psnr_style_loss"]


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of a pre-training run (recorded in the checkpoint).

    Attributes
    ----------
    channels : int
        1 for a native gray model, 3 for RGB.
    multi_channel_mask : bool
        Per-channel masks (pixel-independent model) or one shared mask.
    mask_ratio_min, mask_ratio_max : float
        The drop fraction is drawn uniformly in this range for every batch
        (0.80-0.95 for the real-noise model, 0.30-0.30 for pixel-independent).
    crop_size, batch_size, steps : int
        Crop side, crops per step, total optimiser steps (the cosine schedule
        spans ``steps``).
    learning_rate, final_learning_rate : float
        AdamW start and end of the cosine decay.
    validation_every, checkpoint_every : int
        In steps.
    seed : int
        Seeds data sampling, masks and the network initialisation.
    gray : bool
        Convert every image to luminance first, then replicate it to
        ``channels`` (a 3-channel model that only ever sees gray, as the
        paper feeds gray microscopy). Implied when ``channels`` is 1.
    """

    channels: int = 1
    multi_channel_mask: bool = False
    mask_ratio_min: float = 0.80
    mask_ratio_max: float = 0.95
    crop_size: int = 64
    batch_size: int = 16
    steps: int = 1000
    learning_rate: float = 2e-3
    final_learning_rate: float = 1e-5
    validation_every: int = 250
    checkpoint_every: int = 250
    validation_crops: int = 32
    seed: int = 0
    gray: bool = False


@dataclass
class PretrainProgress:
    """One step of pre-training."""

    step: int
    steps: int
    loss: float
    learning_rate: float
    crops_per_second: float
    validation_psnr: float | None = None


def psnr_style_loss(prediction: torch.Tensor, target: torch.Tensor, keep_mask: torch.Tensor) -> torch.Tensor:
    """``10 / ln 10 * log(mse + 1e-8)`` per image over masked products, averaged.

    ``mse`` is the mean over all elements of ``((y - x) * (1 - M))^2``, as in
    the authors' training loop; lower is better (it is minus a PSNR).
    """
    dropped = 1.0 - keep_mask
    err = ((prediction - target) * dropped).square().flatten(1).mean(dim=1)
    return (10.0 / math.log(10.0) * torch.log(err + 1e-8)).mean()


def _to_channels(image: np.ndarray, channels: int, gray: bool = False) -> np.ndarray:
    """``(H, W)`` or ``(H, W, S)`` float in [0, 1] -> ``(channels, H, W)``.

    Colour becomes luminance (ITU-R 601 weights) for a 1-channel model or when
    ``gray`` is set; gray is replicated for a 3-channel model.
    """
    if image.ndim == 2:
        image = image[..., None]
    image = image[..., :3]
    if (channels == 1 or gray) and image.shape[-1] == 3:
        image = image @ np.array([0.299, 0.587, 0.114], dtype=image.dtype)
        image = image[..., None]
    if channels == 3 and image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return np.ascontiguousarray(np.moveaxis(image, -1, 0), dtype=np.float32)


class Pretrainer:
    """Runs (or resumes) masked pre-training on images held on one device.

    Parameters
    ----------
    images : sequence of ndarray
        ``(H, W)`` or ``(H, W, S)`` float arrays with values in [0, 1], each at
        least ``crop_size`` on both sides.
    config : PretrainConfig
    device : torch.device or str
    data_info : dict
        Provenance of the images (folders and counts), stored in checkpoints.
    validation_images : sequence of ndarray
        Held-back images for the masked-reconstruction PSNR; by default every
        20th training image is held back.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        config: PretrainConfig,
        device: torch.device | str = "cpu",
        data_info: dict[str, Any] | None = None,
        validation_images: Sequence[np.ndarray] | None = None,
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        self.data_info = data_info or {}
        c = config
        images = [_to_channels(im, c.channels, c.gray) for im in images]
        small = [i for i, im in enumerate(images) if min(im.shape[1:]) < c.crop_size]
        if small:
            raise ValueError(f"{len(small)} images are smaller than the crop size {c.crop_size}")
        if validation_images is None:
            validation_images = images[::20]
            images = [im for i, im in enumerate(images) if i % 20]
        else:
            validation_images = [_to_channels(im, c.channels, c.gray) for im in validation_images]
        if not images:
            raise ValueError("no training images")
        self.images = [torch.from_numpy(im).to(self.device) for im in images]
        torch.manual_seed(c.seed)
        self.network = SkipNetwork(c.channels, c.multi_channel_mask).to(self.device)
        self.optimizer = torch.optim.AdamW(
            self.network.parameters(),
            lr=c.learning_rate,
            betas=(0.9, 0.9),
            weight_decay=0.0,
            **({"fused": True} if self.device.type == "cuda" else {}),
        )
        self.step = 0
        self.crops_seen = 0
        self.train_seconds = 0.0
        self.history: list[dict[str, float]] = []
        self.data_generator = torch.Generator().manual_seed(c.seed)
        self.mask_generator = torch.Generator(self.device).manual_seed(c.seed + 1)
        self.validation = self._validation_set([torch.from_numpy(im) for im in validation_images])
        if self.device.type == "cuda":
            self.network = self.network.to(memory_format=torch.channels_last)

    # -- data ---------------------------------------------------------------
    def _crop_batch(self, images: Sequence[torch.Tensor], n: int, gen: torch.Generator) -> torch.Tensor:
        size = self.config.crop_size
        picks = torch.randint(len(images), (n,), generator=gen).tolist()
        crops = []
        for idx in picks:
            im = images[idx]
            h, w = im.shape[1:]
            top = int(torch.randint(h - size + 1, (1,), generator=gen))
            left = int(torch.randint(w - size + 1, (1,), generator=gen))
            crop = im[:, top : top + size, left : left + size]
            rot = int(torch.randint(4, (1,), generator=gen))
            if rot:
                crop = torch.rot90(crop, rot, dims=(1, 2))
            if int(torch.randint(2, (1,), generator=gen)):
                crop = torch.flip(crop, dims=(2,))
            crops.append(crop)
        return torch.stack(crops).to(self.device)

    def _mask_ratio(self, gen: torch.Generator) -> float:
        c = self.config
        u = float(torch.rand((1,), generator=gen))
        return c.mask_ratio_min + (c.mask_ratio_max - c.mask_ratio_min) * u

    def _validation_set(self, images: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(12345)
        crops = self._crop_batch(images, self.config.validation_crops, gen)
        mid = 0.5 * (self.config.mask_ratio_min + self.config.mask_ratio_max)
        k = self.config.channels if self.config.multi_channel_mask else 1
        shape = (crops.shape[0], k, *crops.shape[2:])
        keep = (torch.rand(shape, generator=gen) >= mid).float().to(self.device)
        return crops, keep

    # -- training -----------------------------------------------------------
    def learning_rate_at(self, step: int) -> float:
        """Cosine decay from ``learning_rate`` to ``final_learning_rate`` over ``steps``."""
        c = self.config
        progress = min(step / max(c.steps, 1), 1.0)
        return c.final_learning_rate + 0.5 * (c.learning_rate - c.final_learning_rate) * (
            1 + math.cos(math.pi * progress)
        )

    @torch.no_grad()
    def validate(self) -> float:
        """Masked-reconstruction PSNR (dB) on the held-back crops, dropped pixels only."""
        crops, keep = self.validation
        net = self.network
        net.eval()
        outputs = []
        for i in range(0, crops.shape[0], 16):
            outputs.append(net(network_input(crops[i : i + 16], keep[i : i + 16])))
        net.train()
        out = torch.cat(outputs)
        dropped = (1.0 - keep).expand_as(out)
        mse = ((out - crops).square() * dropped).sum() / dropped.sum()
        return float(10 * torch.log10(1.0 / mse))

    def train_step(self) -> float:
        c = self.config
        net = self.network
        lr = self.learning_rate_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = self._crop_batch(self.images, c.batch_size, self.data_generator)
        ratio = self._mask_ratio(self.data_generator)
        k = c.channels if c.multi_channel_mask else 1
        keep = draw_keep_mask((c.batch_size, k, c.crop_size, c.crop_size), ratio, self.mask_generator, self.device)
        net_in = network_input(batch, keep)
        if self.device.type == "cuda":
            net_in = net_in.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = net(net_in)
            out = out.float()
        else:
            out = net(net_in)
        loss = psnr_style_loss(out, batch, keep)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        self.crops_seen += c.batch_size
        return float(loss.detach())

    def run(self, until: int | None = None, time_limit: float | None = None) -> Iterator[PretrainProgress]:
        """Train until step ``until`` (default: ``config.steps``) or ``time_limit`` seconds.

        Yields a :class:`PretrainProgress` per step; validation PSNR is filled
        every ``validation_every`` steps and at the end.
        """
        c = self.config
        until = c.steps if until is None else min(until, c.steps)
        start = time.perf_counter()
        while self.step < until:
            t0 = time.perf_counter()
            loss = self.train_step()
            dt = time.perf_counter() - t0
            self.train_seconds += dt
            val = None
            if self.step % c.validation_every == 0 or self.step == until:
                val = self.validate()
                self.history.append({"step": self.step, "loss": loss, "validation_psnr": val})
            yield PretrainProgress(self.step, c.steps, loss, self.learning_rate_at(self.step), c.batch_size / dt, val)
            if time_limit is not None and time.perf_counter() - start > time_limit:
                break

    # -- checkpoints --------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        c = self.config
        return {
            "mask_scheme": {
                "multi_channel_mask": c.multi_channel_mask,
                "mask_ratio_min": c.mask_ratio_min,
                "mask_ratio_max": c.mask_ratio_max,
            },
            "config": asdict(c),
            "steps": self.step,
            "crops_seen": self.crops_seen,
            "crop_size": c.crop_size,
            "train_seconds": round(self.train_seconds, 1),
            "data": self.data_info,
            "history": list(self.history),
            "code_version": __version__,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device": _device_name(self.device),
            "torch": str(torch.__version__),
        }

    def save(self, path: str | Path, *, with_training_state: bool = True) -> str:
        """Write a checkpoint (resumable unless ``with_training_state`` is False)."""
        training = None
        if with_training_state:
            training = {
                "optimizer": self.optimizer.state_dict(),
                "step": self.step,
                "crops_seen": self.crops_seen,
                "train_seconds": self.train_seconds,
                "data_rng": self.data_generator.get_state(),
                "mask_rng": self.mask_generator.get_state(),
                "history": list(self.history),
            }
        net = self.network.to(memory_format=torch.contiguous_format)
        sha = save_checkpoint(path, net, self.metadata(), training)
        if self.device.type == "cuda":
            self.network = self.network.to(memory_format=torch.channels_last)
        return sha

    def resume(self, path: str | Path) -> None:
        """Restore weights, optimiser, schedule position and RNG states."""
        raw = torch.load(path, map_location="cpu", weights_only=True)
        if "training" not in raw:
            raise CheckpointError(f"{path} holds no training state; it cannot be resumed")
        saved = raw["metadata"].get("config", {})
        mismatch = {
            k: (saved.get(k), v)
            for k, v in asdict(self.config).items()
            if k in ("channels", "multi_channel_mask", "crop_size", "batch_size", "gray") and saved.get(k, False) != v
        }
        if mismatch:
            raise CheckpointError(f"cannot resume {path}: settings differ {mismatch}")
        tr = raw["training"]
        self.network.load_state_dict(raw["state_dict"])
        self.optimizer.load_state_dict(tr["optimizer"])
        self.step = int(tr["step"])
        self.crops_seen = int(tr["crops_seen"])
        self.train_seconds = float(tr["train_seconds"])
        self.history = list(tr["history"])
        self.data_generator.set_state(tr["data_rng"])
        self.mask_generator.set_state(tr["mask_rng"].to(self.mask_generator.get_state().device))


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
