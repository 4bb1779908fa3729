"""The optimiser of the per-plane fine-tuning."""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["adam_for"]


def adam_for(
    params: Iterable[torch.Tensor], learning_rate: float, device: torch.device, capturable: bool
) -> torch.optim.Adam:
    """Adam as the reference loop uses it; fused (one kernel) on CUDA, capturable for CUDA graphs."""
    if device.type == "cuda":
        return torch.optim.Adam(params, lr=learning_rate, fused=True, capturable=capturable)
    return torch.optim.Adam(params, lr=learning_rate)
