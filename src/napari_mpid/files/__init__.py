"""Files: reading and writing images with their axes, pixel size and run metadata (no torch, no Qt).

The layer between the core (which computes on arrays) and everything that
touches the disk: the napari reader and writer, the command's batches
(:mod:`napari_mpid.batch`) and pre-training from folders of images.

- :mod:`~napari_mpid.files.read`: :func:`open_image` (lazy) and
  :func:`read_image` (into memory) for TIFF, OME-Zarr, PNG/JPEG and what
  bioio reads.
- :mod:`~napari_mpid.files.write`: :func:`write_tiff`,
  :func:`write_ome_zarr`, and outputs filled plane by plane under a
  temporary name and renamed together once complete.
- :mod:`~napari_mpid.files.metadata`: run metadata, OME annotations, pixel
  sizes and units, as stored in each format.
- :mod:`~napari_mpid.files.arrays`: array-likes over file regions and
  stored layouts, for stacks larger than memory.
- :mod:`~napari_mpid.files.formats`: suffixes read and written, and the
  optional packages some formats need.
- :mod:`~napari_mpid.files.disk`: synced folders, atomic small files, a full
  disk named.

This package never imports torch (the napari reader must open files without
it) nor the batch layer above it.
"""

from __future__ import annotations

from .disk import DiskFullError
from .formats import MissingExtraError
from .read import ImageData, ImageReadError, open_image, read_image
from .write import write_ome_zarr, write_tiff

__all__ = [
    "DiskFullError",
    "ImageData",
    "ImageReadError",
    "MissingExtraError",
    "open_image",
    "read_image",
    "write_ome_zarr",
    "write_tiff",
]
