"""Errors that name a problem with the user's input (torch-free)."""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """The input array, its axes or a parameter combination cannot be denoised (the message says why)."""
