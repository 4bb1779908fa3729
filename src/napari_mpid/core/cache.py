"""Where napari-mpid keeps what it computes or downloads once per machine (standard library only).

Used by the time-estimate calibration (:mod:`napari_mpid.core.engine.timing`) and
the downloaded sample data (:mod:`napari_mpid._sample_data`).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "user_cache_dir"]

#: Environment variable that overrides the cache folder (tests, shared machines, read-only homes).
CACHE_ENV = "NAPARI_MPID_CACHE"


def user_cache_dir() -> Path:
    """The folder for napari-mpid's cached files (not created here).

    In order: ``$NAPARI_MPID_CACHE``; the platform's user cache folder from
    ``platformdirs`` when it is installed (e.g. ``~/Library/Caches/napari-mpid``
    on macOS, ``%LOCALAPPDATA%\\napari-mpid\\Cache`` on Windows);
    ``$XDG_CACHE_HOME/napari-mpid``; ``~/.cache/napari-mpid``.
    """
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    try:
        import platformdirs
    except ImportError:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return Path(base) / "napari-mpid"
    return Path(platformdirs.user_cache_dir("napari-mpid", appauthor=False))
