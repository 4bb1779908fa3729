"""Axis letters: the one place that maps file, napari and user axis names to ours.

Torch-free and numpy-only, so the napari reader and writer can import it
without paying for the deep-learning stack.

Our letters: T time, Z depth, C channel (independent planes, one intensity
scale each), Y and X the plane, S colour samples (RGB(A), filled together)
and Q any other plane axis. Letters from other conventions (tifffile's I
series, A angle, P phase, R tile, H lifetime, E lambda, L exposure, V
event, M mosaic, ...) become Q: they are planes to be filled one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from napari_mpid.core.errors import InputError

__all__ = [
    "AXIS_LETTERS",
    "axes_from_labels",
    "default_axes",
    "labels_for_axes",
    "normalize_axes",
    "resolve_axes",
]

#: T time, Z depth, C channel, Y/X the plane, S colour samples, Q any other plane axis.
AXIS_LETTERS = "TZCYXSQ"
#: Letters that may appear at most once.
_UNIQUE = "TZCYXS"

#: Our letter -> napari axis label.
_LABEL_OF = {"T": "t", "Z": "z", "C": "c", "Y": "y", "X": "x", "S": "s", "Q": "q"}
#: napari / human axis labels (lower-cased) -> our letter.
_LETTER_OF_LABEL = {
    "t": "T", "time": "T", "frame": "T", "frames": "T",
    "z": "Z", "depth": "Z", "slice": "Z", "slices": "Z", "plane": "Z", "planes": "Z",
    "c": "C", "channel": "C", "channels": "C", "ch": "C",
    "y": "Y", "row": "Y", "rows": "Y", "height": "Y",
    "x": "X", "col": "X", "column": "X", "columns": "X", "width": "X",
    "s": "S", "rgb": "S", "sample": "S", "samples": "S",
}  # fmt: skip


def normalize_axes(axes: str) -> str:
    """Upper-case ``axes`` and map every letter outside :data:`AXIS_LETTERS` to Q.

    A repeated T, Z or C (which would be ambiguous) also becomes Q from its
    second occurrence on; repeated Y, X or S are left for
    :func:`resolve_axes` to refuse.
    """
    out = []
    for letter in axes.upper():
        if letter not in AXIS_LETTERS:
            letter = "Q"
        elif letter in "TZC" and letter in out:
            letter = "Q"
        out.append(letter)
    return "".join(out)


def default_axes(shape: Sequence[int], rgb: bool | None = None) -> str:
    """Guess axes from a shape alone.

    2D is "YX"; with a last dimension of 3 or 4 and ``ndim == 3`` (or with
    ``rgb=True``) the last axis holds colour samples; every leading
    dimension is a plane axis "Q".
    """
    ndim = len(shape)
    if ndim < 2:
        raise InputError(f"a {ndim}D array is not an image; need at least 2 dimensions (Y, X)")
    rgb_last = rgb if rgb is not None else (ndim == 3 and shape[-1] in (3, 4))
    if rgb_last:
        if ndim < 3:
            raise InputError(f"a 2D array of shape {tuple(shape)} cannot hold RGB colour samples")
        return "Q" * (ndim - 3) + "YXS"
    return "Q" * (ndim - 2) + "YX"


def resolve_axes(shape: Sequence[int], axes: str | None = None, rgb: bool | None = None) -> str:
    """Validate or guess the axes string of an array of ``shape``.

    Parameters
    ----------
    shape : sequence of int
        The array's shape.
    axes : str, optional
        One letter per dimension from :data:`AXIS_LETTERS`; guessed with
        :func:`default_axes` when omitted. Letters of other conventions are
        refused here (use :func:`normalize_axes` for file metadata).
    rgb : bool, optional
        Whether the last axis holds colour samples (only used to guess).

    Raises
    ------
    InputError
        If the axes do not match the shape or are ambiguous.
    """
    shape = tuple(int(n) for n in shape)
    if axes is None:
        return default_axes(shape, rgb)
    axes = axes.upper()
    bad = sorted(set(axes) - set(AXIS_LETTERS))
    if bad:
        raise InputError(f"unknown axis letter(s) {''.join(bad)!r} in {axes!r}; use letters from {AXIS_LETTERS}")
    if len(axes) != len(shape):
        raise InputError(f"axes {axes!r} have {len(axes)} letters but the array has {len(shape)} dimensions {shape}")
    for letter in _UNIQUE:
        if axes.count(letter) > 1:
            raise InputError(f"axis {letter!r} appears twice in {axes!r}")
    if "Y" not in axes or "X" not in axes:
        raise InputError(f"axes {axes!r} must contain Y and X")
    if "S" in axes and shape[axes.index("S")] not in (3, 4):
        raise InputError(f"colour axis S must have 3 (RGB) or 4 (RGBA) samples, not {shape[axes.index('S')]}")
    return axes


def labels_for_axes(axes: str) -> tuple[str, ...]:
    """napari axis labels for our letters ("ZYX" -> ("z", "y", "x")); repeated Q get q, q1, q2..."""
    labels, seen = [], 0
    for letter in axes:
        label = _LABEL_OF.get(letter, "q")
        if letter == "Q":
            label = "q" if seen == 0 else f"q{seen}"
            seen += 1
        labels.append(label)
    return tuple(labels)


def axes_from_labels(labels: Iterable[object], rgb: bool = False) -> str:
    """Our letters for napari axis labels ("z", "time", "channel", ...); unknown labels give Q.

    ``rgb`` appends the colour axis S, which napari does not label. The result
    is not validated against a shape (see :func:`resolve_axes`).
    """
    letters = []
    for label in labels:
        text = str(label).strip().lower()
        letter = _LETTER_OF_LABEL.get(text)
        if letter is None:
            letter = "Q"
        letters.append(letter)
    return normalize_axes("".join(letters)) + ("S" if rgb else "")
