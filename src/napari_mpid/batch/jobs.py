"""The jobs of one command: which inputs, where their outputs go, and whether those paths can be written.

One input and one output file (``napari-mpid denoise in.tif -o out.tif``), or
many inputs (files, folders, globs) into an output folder
(``-o OUTDIR``: ``OUTDIR/<input name>.tif`` or ``.ome.zarr``).
:func:`plan_jobs` turns the command line into :class:`Job` s and
:func:`check_outputs` refuses bad output paths before any compute. A job's
fate is an :class:`Outcome`; :class:`RunOptions` holds how to run them.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files.formats import (
    BIO_SUFFIXES,
    OUTPUT_SUFFIXES,
    PLAIN_SUFFIXES,
    TIFF_SUFFIXES,
    image_stem,
    is_zarr_path,
    require_ome_zarr,
)

__all__ = [
    "FORMATS",
    "INPUT_SUFFIXES",
    "STOPPED",
    "UNWRITABLE_SUFFIXES",
    "Job",
    "Outcome",
    "RunOptions",
    "check_outputs",
    "collect_inputs",
    "plan_jobs",
]

#: Output formats of batch mode (``--format``) and their suffixes.
FORMATS = {"tif": ".tif", "ome.zarr": ".ome.zarr"}
#: What a folder given as input contributes: image files and OME-Zarr stores.
INPUT_SUFFIXES = (*TIFF_SUFFIXES, *PLAIN_SUFFIXES, *BIO_SUFFIXES)
#: Image file suffixes napari-mpid does not write: an output path ending in one
#: of them is a file name the user expects, never a folder to create.
UNWRITABLE_SUFFIXES = (
    *PLAIN_SUFFIXES,
    *BIO_SUFFIXES,
    *(".btf", ".tf2", ".tf8", ".gif", ".webp", ".jp2", ".j2k", ".jxl", ".avif", ".heic", ".tga", ".pgm", ".ppm"),
    *(".npy", ".npz", ".h5", ".hdf5", ".n5", ".mrc", ".dv", ".ics", ".ids", ".nrrd", ".nii", ".klb", ".dcm"),
    *(".svs", ".ndpi", ".scn", ".fits", ".stk", ".zvi", ".sld"),
)
#: Why the jobs after a failure were not run.
STOPPED = "stopped after a failure (--keep-going continues)"


@dataclass
class RunOptions:
    """How to run a batch (the CLI's options other than the fill parameters).

    Attributes
    ----------
    params : FillParams
        Filling parameters, as the user gave them.
    axes : str or None
        Axes of every input (None: from each file).
    dtype : str
        "float32" or "input" (the input's integer type, rounded and clipped).
    resume, overwrite, keep_going, quiet : bool
        See ``napari-mpid denoise --help``.
    """

    params: Any
    axes: str | None = None
    dtype: str = "float32"
    resume: bool = False
    overwrite: bool = False
    keep_going: bool = False
    quiet: bool = False


@dataclass
class Job:
    """One input and where its outputs go."""

    input: Path
    output: Path
    noise_map: Path | None = None

    @property
    def outputs(self) -> list[Path]:
        """The output paths (main first)."""
        return [self.output] + ([self.noise_map] if self.noise_map else [])


@dataclass
class Outcome:
    """What became of one job: "done", "skipped", "failed" or "not run"."""

    job: Job
    status: str
    reason: str = ""
    computed: int = 0
    resumed: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    device: str = ""
    model: str = ""
    #: What was done and what produced the result, in plain words (:meth:`DenoiseResult.summary`).
    summary: str = ""


# --- inputs, outputs -----------------------------------------------------------------------


def _is_input(path: Path) -> bool:
    return (path.is_dir() and is_zarr_path(path)) or (path.is_file() and path.suffix.lower() in INPUT_SUFFIXES)


def collect_inputs(items: list[str]) -> list[Path]:
    """Files named, images in folders named (not recursive), and glob matches, in order, without repeats.

    Parameters
    ----------
    items : list of str
        The command line's inputs: files, OME-Zarr stores, folders, globs.

    Returns
    -------
    list of Path
        One per input, each once (the first spelling kept).

    Raises
    ------
    ValueError
        A glob or folder that yields no image.
    """
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir() and not is_zarr_path(path):
            inside = sorted(p for p in path.iterdir() if _is_input(p))
            if not inside:
                raise ValueError(f"folder {item} holds no image ({', '.join(INPUT_SUFFIXES)} or .zarr)")
            found += inside
        elif not path.exists() and glob.has_magic(item):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            if not matches:
                raise ValueError(f"no file matches {item!r}")
            found += [m for m in matches if _is_input(m)] or matches
        else:
            found.append(path)
    unique: dict[str, Path] = {}
    for path in found:
        unique.setdefault(os.path.abspath(path), path)
    return list(unique.values())


def plan_jobs(items: list[str], output: str, noise_map: str | None = None, fmt: str = "tif") -> tuple[list[Job], bool]:
    """Turn the command line's inputs and outputs into jobs; also says whether this is batch mode.

    One input with ``-o`` naming a file (``.tif``, ``.tiff``, ``.ome.zarr``) is
    the single-file form, where ``--noise-map`` names a file too. Otherwise
    ``-o`` (and ``--noise-map``) name folders, and every input ``a.tif`` gives
    ``OUTDIR/a.tif`` (or ``a.ome.zarr``) and ``NOISEDIR/a_noise_map.tif``.

    Parameters
    ----------
    items : list of str
        The inputs, as :func:`collect_inputs` takes them.
    output : str
        ``-o``: a file (one input) or a folder.
    noise_map : str, optional
        ``--noise-map``: a file or a folder, like ``output``.
    fmt : str
        ``--format`` of batch mode: "tif" or "ome.zarr".

    Returns
    -------
    jobs : list of Job
        One per input, in order.
    batch : bool
        Whether this is batch mode (outputs into folders).

    Raises
    ------
    ValueError
        ``-o`` or ``--noise-map`` ending in an image suffix that cannot be
        written (e.g. ``result.png``: a file the user expects, not a folder),
        a file name for several inputs, an unknown format, an empty glob or folder.
    """
    out = Path(output)
    for option, path in (("-o", out), ("--noise-map", Path(noise_map) if noise_map else None)):
        if path is not None and path.suffix.lower() in UNWRITABLE_SUFFIXES:
            raise ValueError(
                f"{option} {path.name}: napari-mpid cannot write {path.suffix.lower()} files; an output must end "
                "in .tif, .tiff or .ome.zarr, or name a folder"
            )
    inputs = collect_inputs(items)
    file_output = out.suffix.lower() in OUTPUT_SUFFIXES and not (out.is_dir() and not is_zarr_path(out))
    if len(inputs) == 1 and file_output:
        return [Job(inputs[0], out, Path(noise_map) if noise_map else None)], False
    if file_output and not out.is_dir():
        raise ValueError(f"{len(inputs)} inputs need -o to name a folder, not the file name {out.name!r}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; use {' or '.join(FORMATS)}")
    suffix = FORMATS[fmt]
    noise_dir = Path(noise_map) if noise_map else None
    jobs = [
        Job(
            p, out / f"{image_stem(p)}{suffix}", noise_dir / f"{image_stem(p)}_noise_map{suffix}" if noise_dir else None
        )
        for p in inputs
    ]
    return jobs, True


def _same(a: Path, b: Path) -> bool:
    if os.path.abspath(a) == os.path.abspath(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(jobs: list[Job], batch: bool) -> None:
    """Refuse bad output paths before any compute; in batch mode create the output folders.

    Parameters
    ----------
    jobs : list of Job
        From :func:`plan_jobs`.
    batch : bool
        Whether this is batch mode (the output folders may be created).

    Raises
    ------
    ValueError
        With the first problem: a suffix that is not .tif/.tiff/.ome.zarr, a
        missing or read-only folder, an output that is an input or another
        output, two inputs with the same output name.
    MissingExtraError
        OME-Zarr output without ome-zarr-py installed.
    """
    if batch:
        folders = {job.output.parent for job in jobs} | {job.noise_map.parent for job in jobs if job.noise_map}
        for folder in sorted(folders):
            if folder.exists() and not folder.is_dir():
                raise ValueError(f"output folder {folder} is a file")
            if not folder.parent.is_dir():
                raise ValueError(f"output folder {folder} cannot be made: {folder.parent} does not exist")
            folder.mkdir(exist_ok=True)
    inputs = [job.input for job in jobs]
    seen: dict[str, Path] = {}
    for job in jobs:
        for path in job.outputs:
            if path.suffix.lower() not in OUTPUT_SUFFIXES:
                raise ValueError(f"output {path.name!r} must end in .tif, .tiff or .ome.zarr")
            if is_zarr_path(path):
                require_ome_zarr()
            folder = path.parent
            if not folder.is_dir():
                raise ValueError(f"output folder {folder} does not exist")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise ValueError(f"output folder {folder} is not writable")
            if path.is_dir() and not is_zarr_path(path):
                raise ValueError(f"output {path} is a folder")
            for source in inputs:
                if _same(path, source):
                    raise ValueError(f"output {path} is an input file; choose another name")
            key = os.path.abspath(path)
            if key in seen:
                other = seen[key]
                raise ValueError(
                    f"two outputs are named {path}"
                    + (f" (inputs {other.name} and {job.input.name})" if other != job.input else "")
                )
            seen[key] = job.input
