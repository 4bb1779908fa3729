"""Sample data: the procedural fluorescence z-stack, noisy and clean (numpy only)."""

from __future__ import annotations

from typing import Any

from .synthetic import fluorescence_stack

__all__ = ["fluorescence_sample"]


def fluorescence_sample() -> list[tuple[Any, dict[str, Any], str]]:
    """A synthetic 5x256x256 uint16 fluorescence z-stack ("noisy") and its noise-free version ("clean")."""
    noisy, clean = fluorescence_stack()
    common = {"axis_labels": ("z", "y", "x")}
    limits = (float(clean.min()), float(clean.max()))
    return [
        (clean, {**common, "name": "clean", "contrast_limits": limits, "visible": False}, "image"),
        (noisy, {**common, "name": "noisy", "contrast_limits": limits}, "image"),
    ]
