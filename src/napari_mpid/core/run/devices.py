"""Choosing the compute device."""

from __future__ import annotations

import re

import torch

from napari_mpid.core.errors import DeviceError

__all__ = ["DeviceError", "available_devices", "resolve_device", "resolve_precision"]


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def available_devices() -> list[str]:
    """Device names usable here: "auto", "cpu", each "cuda:N", "mps"."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names


def resolve_device(name: str = "auto") -> torch.device:
    """Turn "auto", "cpu", "cuda", "cuda:N" or "mps" into a torch.device.

    "auto" picks CUDA, then MPS, then the CPU.

    Raises
    ------
    DeviceError
        If the device is unknown or not present, with the reason.
    """
    spec = (name or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if match:
        if not torch.cuda.is_available():
            reason = (
                "this PyTorch build has no CUDA support"
                if torch.version.cuda is None
                else "no NVIDIA GPU/driver was found"
            )
            raise DeviceError(f"device {name!r} is not available: {reason}; use 'cpu' or 'auto'")
        index = int(match.group(1) or 0)
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} is not available: only {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    if spec == "mps":
        if not _mps_available():
            raise DeviceError(f"device {name!r} is not available: Apple MPS needs macOS on Apple silicon")
        return torch.device("mps")
    raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turn "auto" into "bfloat16" or "float32" for ``device``.

    "auto" uses bf16 only where it was measured to be both faster and as
    accurate (docs/benchmarks.md): CPUs with native bf16 instructions
    (AVX-512 BF16 / AMX) through oneDNN. GPUs stay float32: on an H100, bf16
    was no faster (docs/benchmarks.md, "GPU (NVIDIA H100)", "Speed").
    """
    if precision != "auto":
        return precision
    if device.type == "cpu":
        try:
            if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
                return "bfloat16"
        except (AttributeError, RuntimeError):
            pass
    return "float32"
