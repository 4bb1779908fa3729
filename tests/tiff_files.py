"""TIFF files that tests of several layers (reading, the CLI) need."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile


def header_only_huge_tiff(folder: Path) -> Path:
    """``huge.tif``: a header that declares a 60000 x 60000 uint16 plane (7.2 GB) in an 8 KB file (a truncated copy)."""
    path = folder / "huge.tif"
    tifffile.imwrite(path, np.zeros((64, 64), np.uint16), bigtiff=True, metadata=None)
    with tifffile.TiffFile(path, mode="r+") as tif:
        for code, value in ((256, 60000), (257, 60000), (278, 60000), (279, 60000 * 60000 * 2)):
            tif.pages.first.tags[code].overwrite(value)  # width, length, rows per strip, strip bytes
    return path
