"""The resume journal of one input: what is being written, and which planes are on disk.

A run that is killed at any moment (``kill -9``, power loss) is continued by
running the same command with ``--resume``. The journal is a folder beside
the main output, ``<output>.journal/``:

- ``journal.json``: the input's fingerprint (size, modification time, a hash
  of its header and of a few planes), the run's settings (parameters, axes,
  outputs), the intensity scales fitted once for the whole stack, the output
  files (under their temporary names) and the state ("running", then
  "committing" while the outputs are renamed). Written atomically.
- ``planes.log``: one finished plane number per line, appended and fsync'ed
  after that plane's data are on disk; a torn last line is ignored.
- any extra files a run needs to continue (:meth:`Journal.save_extra`).
  Nothing uses them yet: context filling refits a stack's network when a
  run is resumed in the middle of that stack (same seed, same weights, so
  the outputs are unchanged; only the fit's time is spent again).

Every plane's random masks depend only on the seed and its plane number, so
planes filled after a resume are identical to those of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..files.disk import fsync_directory, write_atomic

__all__ = ["JOURNAL_VERSION", "Journal", "JournalMismatch", "fingerprint"]

JOURNAL_VERSION = 1
#: Bytes of a file's beginning that go into its fingerprint.
_HEADER_BYTES = 1 << 20


class JournalMismatch(ValueError):
    """The journal was written for another input or other settings (the message says what differs)."""


def fingerprint(path: str | Path, data: Any, planes: list[tuple[Any, ...]]) -> dict[str, Any]:
    """What identifies an input: size, modification time, a hash of its header and of its first, middle and last plane.

    Parameters
    ----------
    path : str or Path
        The input file or folder (OME-Zarr).
    data : array-like
        Its pixels (read lazily: only three planes are read).
    planes : list of tuple
        Index tuples of its planes (e.g. ``[plan.key(p) for p in plan.planes]``).
    """
    path = Path(path)
    digest = hashlib.sha256()
    stat = path.stat()
    if path.is_file():
        size, mtime = stat.st_size, stat.st_mtime_ns
        with open(path, "rb") as fh:
            digest.update(fh.read(_HEADER_BYTES))
    else:
        # Zarr metadata files of the group and its arrays (not the chunks, which may be millions).
        near = [*path.iterdir(), *(q for d in path.iterdir() if d.is_dir() for q in d.iterdir())]
        files = sorted(p for p in near if p.is_file() and (p.name.startswith(".z") or p.suffix == ".json"))
        size, mtime = len(files), max((p.stat().st_mtime_ns for p in files), default=stat.st_mtime_ns)
        for p in files[:64]:
            digest.update(p.read_bytes())
    digest.update(repr((tuple(data.shape), str(data.dtype))).encode())
    for i in sorted({0, len(planes) // 2, len(planes) - 1}):
        digest.update(np.ascontiguousarray(np.asarray(data[planes[i]])).tobytes())
    return {"path": str(path.resolve()), "size": int(size), "mtime_ns": int(mtime), "sha256": digest.hexdigest()}


class Journal:
    """The journal folder of one main output (see the module docstring)."""

    def __init__(self, output: str | Path) -> None:
        output = Path(output)
        #: The journal folder, ``<output>.journal``.
        self.folder = output.with_name(output.name + ".journal")
        self._header: dict[str, Any] | None = None

    @property
    def header_path(self) -> Path:
        """``journal.json``."""
        return self.folder / "journal.json"

    @property
    def log_path(self) -> Path:
        """``planes.log``."""
        return self.folder / "planes.log"

    def exists(self) -> bool:
        """Whether a complete journal is there (its header was written)."""
        return self.header_path.is_file()

    def create(self, header: dict[str, Any]) -> None:
        """Start a new journal (replacing any other) with this header."""
        self.remove()
        self.folder.mkdir(parents=False)
        self.log_path.touch()
        self._write_header({"version": JOURNAL_VERSION, "state": "running", **header})
        fsync_directory(self.folder.parent)

    def _write_header(self, header: dict[str, Any]) -> None:
        write_atomic(self.header_path, json.dumps(header, indent=1, sort_keys=True).encode())
        self._header = header

    def header(self) -> dict[str, Any]:
        """The header as written (``version``, ``state``, and what :meth:`create` was given)."""
        if self._header is None:
            try:
                self._header = json.loads(self.header_path.read_text())
            except (OSError, ValueError) as exc:
                raise JournalMismatch(f"the journal {self.folder} is unreadable ({exc}); use --overwrite") from None
            if self._header.get("version") != JOURNAL_VERSION:
                raise JournalMismatch(
                    f"the journal {self.folder} was written by another version of napari-mpid; use --overwrite"
                )
        return self._header

    def set_state(self, state: str) -> None:
        """Record the run's state ("running", "committing")."""
        self._write_header({**self.header(), "state": state})

    def finished(self) -> set[int]:
        """Numbers of the planes recorded as finished (a torn last line is ignored)."""
        try:
            text = self.log_path.read_text()
        except FileNotFoundError:
            return set()
        lines = text.split("\n")[:-1]  # the last element is empty, or a line cut short by a crash
        return {int(line) for line in lines if line.strip().isdigit()}

    def mark(self, numbers: Iterable[int]) -> None:
        """Record planes as finished; call only once their data are on disk. Durable when it returns."""
        text = "".join(f"{int(n)}\n" for n in numbers)
        if not text:
            return
        with open(self.log_path, "a") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    def save_extra(self, name: str, data: bytes) -> Path:
        """Store a file the run needs to continue (atomically); returns its path."""
        if "/" in name or name in ("journal.json", "planes.log"):
            raise ValueError(f"invalid journal entry name {name!r}")
        path = self.folder / name
        write_atomic(path, data)
        return path

    def load_extra(self, name: str) -> bytes | None:
        """A file stored with :meth:`save_extra`, None if there is none."""
        try:
            return (self.folder / name).read_bytes()
        except FileNotFoundError:
            return None

    def check(self, input_print: dict[str, Any], settings: dict[str, Any]) -> None:
        """Refuse to resume for another input or other settings.

        Raises
        ------
        JournalMismatch
            With a message naming what changed.
        """
        header = self.header()
        old = header.get("input", {})
        changed = [k for k in ("size", "mtime_ns", "sha256") if old.get(k) != input_print.get(k)]
        if changed:
            raise JournalMismatch(
                f"the input changed since the interrupted run ({', '.join(changed)} differ; journal {self.folder}); "
                "use --overwrite to start over"
            )
        before = dict(header.get("settings", {}))
        if isinstance(before.get("outputs"), list):  # written relative to the folder the run started in
            before["outputs"] = [os.path.abspath(p) for p in before["outputs"]]
        diffs = [
            f"{k}: {before.get(k)!r} -> {settings.get(k)!r}"
            for k in sorted(set(before) | set(settings))
            if before.get(k) != settings.get(k)
        ]
        if diffs:
            raise JournalMismatch(
                f"the settings differ from the interrupted run's ({'; '.join(diffs[:3])}"
                f"{'; ...' if len(diffs) > 3 else ''}); run the same command to resume, or use --overwrite"
            )

    def remove(self) -> None:
        """Delete the journal folder."""
        if self.folder.is_dir():
            shutil.rmtree(self.folder, ignore_errors=True)
        elif self.folder.exists():
            self.folder.unlink()
        self._header = None
