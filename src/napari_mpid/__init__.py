"""napari-mpid: zero-shot denoising of microscopy images with MPI.

Masked pre-training + iterative filling (Ma et al., "Masked Pre-training
Enables Universal Zero-shot Denoiser", NeurIPS 2024) as a Python API, a
command line tool and a napari plugin.

Importing this package is cheap: it imports neither torch, Qt nor napari
until an API function is used.
"""

from __future__ import annotations

from typing import Any

from napari_mpid.core.version import __version__

__all__ = [
    "PRESETS",
    "DenoiseResult",
    "FillParams",
    "Progress",
    "__version__",
    "denoise",
    "denoise_iter",
    "load_model",
    "preset",
    "pretrain",
]

_LAZY = {
    "FillParams": "napari_mpid.core.params",
    "PRESETS": "napari_mpid.core.params",
    "preset": "napari_mpid.core.params",
    "Progress": "napari_mpid.core.results",
    "DenoiseResult": "napari_mpid.core.results",
    "denoise": "napari_mpid.api",
    "denoise_iter": "napari_mpid.api",
    "load_model": "napari_mpid.api",
    "pretrain": "napari_mpid.api",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'napari_mpid' has no attribute {name!r}")
