"""Durable steps on the file system: synced folders, atomic small files, a full disk named.

The outputs (:mod:`napari_mpid.files.write`) and the resume journal
(:mod:`napari_mpid.batch.journal`) must survive a crash at any moment: a
file or rename counts only once the folder holding it is synced, and a
small file is replaced whole or not at all. A full disk is reported as
:class:`DiskFullError`, naming the file, so that the user reads which device
to free.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["DiskFullError", "fsync_directory", "is_disk_full", "write_atomic"]


class DiskFullError(OSError):
    """No space left on the device that holds an output (``errno.ENOSPC``); the message names the file."""

    def __init__(self, path: str | os.PathLike, needed: int | None = None) -> None:
        super().__init__(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
        self.needed = needed

    def __str__(self) -> str:
        size = f" ({self.needed / 2**20:.1f} MiB needed)" if self.needed else ""
        return f"disk full: no space left on the device holding {self.filename}{size}"


def is_disk_full(exc: BaseException) -> bool:
    """Tell whether an exception is the operating system's "no space left on device".

    Parameters
    ----------
    exc : BaseException
        Any exception.

    Returns
    -------
    bool
        True for an OSError with ``errno.ENOSPC`` (DiskFullError included).
    """
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def fsync_directory(path: str | Path) -> None:
    """Make a rename or a new file in a folder durable.

    Parameters
    ----------
    path : str or Path
        The folder. Nothing happens where folders cannot be opened or synced
        (some file systems, Windows).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace a file's content whole: written beside it, synced, renamed over it, folder synced.

    Parameters
    ----------
    path : Path
        The file; ``<name>.tmp`` beside it is used on the way.
    data : bytes
        Its new content.
    """
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_directory(path.parent)
