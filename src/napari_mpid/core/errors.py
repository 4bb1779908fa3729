"""Errors that name a problem with the user's input (torch-free)."""

from __future__ import annotations

__all__ = ["InputError", "OutOfMemory"]


class InputError(ValueError):
    """The input array, its axes or a parameter combination cannot be denoised (the message says why)."""


class OutOfMemory(RuntimeError):
    """The device ran out of memory; the message says which settings to lower."""
