"""Every error the core raises for a problem the user can fix; each message names the problem (torch-free).

The layers above (API, CLI, widget) catch these to show one line instead of a
traceback; anything else is a bug.
"""

from __future__ import annotations

__all__ = ["USER_ERRORS", "CheckpointError", "DeviceError", "InputError", "OutOfMemory", "ParameterError"]


class InputError(ValueError):
    """The input array, its axes or a parameter combination cannot be denoised (the message says why)."""


class ParameterError(ValueError):
    """A parameter is out of its range or of the wrong kind."""


class CheckpointError(RuntimeError):
    """A checkpoint cannot be found, verified or loaded."""


class DeviceError(RuntimeError):
    """The requested device does not exist on this machine."""


class OutOfMemory(RuntimeError):
    """The device ran out of memory; the message says which settings to lower."""


#: What a user's input or settings can cause before any work starts.
USER_ERRORS = (InputError, DeviceError, CheckpointError, ParameterError)
