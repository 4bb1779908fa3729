"""What every filler is told: the paper's settings for one filling and how to compute it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["FillSettings"]

PRECISIONS = ("float32", "bfloat16")


@dataclass(frozen=True)
class FillSettings:
    """Settings of one filling, fixed before a filler exists.

    Parameters
    ----------
    mask_ratio : float
        Fraction of pixels dropped per iteration (MPI, Sec. 3.2), in (0, 1).
        Chosen once per part before its filler is built: the plan resolves an
        unset ratio to the model's own, and the auto preset picks one from the
        part's noise (:func:`~napari_mpid.core.auto.policy.choose_filling`).
    learning_rate : float
        Adam learning rate of the fine-tuning.
    beta : float
        EMA weight of the running average of predictions (plane fillers;
        context filling averages its passes instead).
    precision : str
        "float32" or "bfloat16" (convolutions only).
    channels_last : bool
        NHWC activations (faster oneDNN/cuDNN kernels).
    cuda_graph : bool
        On CUDA, replay each iteration as one captured CUDA graph; ignored
        elsewhere and when masks are injected.
    shared_mask : bool
        Draw one mask and use it for every channel even when the network
        takes one mask per channel. Needed when a gray plane enters a
        3-channel network as three equal channels: independent masks would
        show every dropped pixel's own value in another channel, and the
        network would learn to copy it instead of denoising.
    """

    mask_ratio: float
    learning_rate: float
    beta: float = 0.9
    precision: str = "float32"
    channels_last: bool = False
    cuda_graph: bool = False
    shared_mask: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be float32 or bfloat16, not {self.precision!r}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")

    def replace(self, **changes: object) -> FillSettings:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)
