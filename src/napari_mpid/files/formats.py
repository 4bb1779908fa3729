"""Which files napari-mpid reads and writes: suffixes, names, and the optional packages some formats need.

Reading (:mod:`napari_mpid.files.read`), writing
(:mod:`napari_mpid.files.write`), the batch layer's search for inputs and the
napari reader all decide from these lists, so that a format is added in one
place.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = [
    "BIO_SUFFIXES",
    "OUTPUT_SUFFIXES",
    "PLAIN_SUFFIXES",
    "TIFF_SUFFIXES",
    "ZARR_SUFFIXES",
    "MissingExtraError",
    "image_stem",
    "is_zarr_path",
    "require_ome_zarr",
]

TIFF_SUFFIXES = (".tif", ".tiff")
PLAIN_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
ZARR_SUFFIXES = (".zarr",)
#: Formats read through bioio (or aicsimageio) when one of them is installed.
BIO_SUFFIXES = (".czi", ".nd2", ".lif", ".lsm", ".oib", ".oif", ".vsi", ".ims")
#: What napari-mpid writes: TIFF, and OME-Zarr (``.ome.zarr`` ends in ``.zarr``).
OUTPUT_SUFFIXES = (*TIFF_SUFFIXES, ".zarr")


class MissingExtraError(RuntimeError):
    """An optional dependency needed for a format is not installed (the message names the extra)."""


def require_ome_zarr() -> None:
    """Check that OME-Zarr can be read and written.

    Raises
    ------
    MissingExtraError
        ome-zarr-py or zarr cannot be imported; the message names the extra to install.
    """
    missing = [name for name in ("zarr", "ome_zarr") if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtraError(
            f'OME-Zarr needs the {" and ".join(missing)} package(s): pip install "napari-mpid[ome-zarr]"'
        )


def is_zarr_path(path: str | Path) -> bool:
    """Tell whether a path names a Zarr store.

    Parameters
    ----------
    path : str or Path
        A file or folder name (it need not exist).

    Returns
    -------
    bool
        True for ``.zarr``, including ``.ome.zarr``.
    """
    return Path(path).suffix.lower() in ZARR_SUFFIXES


def image_stem(path: str | Path) -> str:
    """The file name without its image suffixes.

    Parameters
    ----------
    path : str or Path
        An image file or store, e.g. ``"data/cells.ome.tif"``.

    Returns
    -------
    str
        The name without folder and image suffixes, e.g. ``"cells"``.
    """
    name = Path(path).name
    lower = name.lower()
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr", *TIFF_SUFFIXES, *ZARR_SUFFIXES, *PLAIN_SUFFIXES):
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return Path(name).stem or name
