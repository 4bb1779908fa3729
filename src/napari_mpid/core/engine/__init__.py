"""Denoising N-D microscopy arrays plane by plane: the core's long-running work.

:func:`denoise_planes` is a generator: it yields a :class:`Progress` after
every filling iteration (and one with ``event="plane"`` when a plane has
been written to the outputs) and returns a :class:`DenoiseResult`. Scripts
run it to the end (:func:`napari_mpid.api.denoise`); the napari widget runs
it in a ``thread_worker``, whose ``quit()`` closes the generator between two
iterations. The input is never modified and nothing partial is returned
when the generator is closed early.

The work is split into: :mod:`.plan` (validation, planes, tiles, seeds),
:mod:`.scales` (intensity scales), :mod:`.assemble` (parts of a plane, outputs),
and here :mod:`.dispatch` (the entry point), :mod:`.modes` (the loops of each
run mode), :mod:`.parts` (one part of a plane) and :mod:`.timing` (the time
estimate).
"""

from napari_mpid.core.engine.dispatch import denoise_planes
from napari_mpid.core.engine.modes import CONTEXT_CROP, CONTEXT_PASSES, STATIC_EXCESS
from napari_mpid.core.errors import InputError
from napari_mpid.core.results import DenoiseResult, Progress
from napari_mpid.core.run.axes import AXIS_LETTERS, resolve_axes

__all__ = [
    "AXIS_LETTERS",
    "CONTEXT_CROP",
    "CONTEXT_PASSES",
    "STATIC_EXCESS",
    "DenoiseResult",
    "InputError",
    "Progress",
    "denoise_planes",
    "resolve_axes",
]
