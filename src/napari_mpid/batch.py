"""Denoising files: inputs to outputs, plane by plane, resumable, with a summary (what the CLI runs).

One input and one output file (``napari-mpid denoise in.tif -o out.tif``), or
many inputs (files, folders, globs) into an output folder
(``-o OUTDIR``: ``OUTDIR/<input name>.tif`` or ``.ome.zarr``). For every input:

1. every output path is checked before any compute (suffix, folder, writable,
   not an input, not another output);
2. the input is opened lazily and validated against the parameters
   (:func:`napari_mpid.core.plan.make_plan`), its intensity scales are fitted
   once (one pass over its planes, which also refuses NaN/Inf);
3. the outputs are created under temporary names (``<name>.partial``) with
   their final shape, axes and pixel size, and a journal is started beside
   the main output (:mod:`napari_mpid.journal`);
4. the engine writes each finished plane straight into the outputs; the
   journal records it once it is on disk;
5. the run's metadata is stored, and the outputs are renamed to their final
   names together.

A run killed at any moment is continued with ``--resume``: finished planes
are not computed again, and the outputs equal those of an uninterrupted run.
A full disk stops the job with a one-line error; once outputs and journal
exist, they are kept, so that ``--resume`` finishes the job after space is
freed (the outputs' space is reserved when they are created, so a disk that
is too small is usually found before any plane is computed).
An input whose outputs all exist (and have no journal) is *skipped* unless
``--overwrite`` is given.
"""

from __future__ import annotations

import errno
import glob
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .files.disk import DiskFullError
from .files.formats import (
    BIO_SUFFIXES,
    OUTPUT_SUFFIXES,
    PLAIN_SUFFIXES,
    TIFF_SUFFIXES,
    image_stem,
    is_zarr_path,
    require_ome_zarr,
)
from .files.metadata import jsonable
from .files.read import ImageData, open_image
from .files.write import (
    OutputSpec,
    commit,
    create,
    discard,
    finalize,
    open_array,
    partial_path,
    plan_output,
)
from .journal import Journal, JournalMismatch, fingerprint

__all__ = ["Job", "Outcome", "Prepared", "RunOptions", "plan_jobs", "print_summary", "run_jobs"]

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


# --- one job -------------------------------------------------------------------------------


class _FiniteChecked:
    """Reads planes of a float source and refuses NaN/Inf (during the scale fitting pass)."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self.shape = tuple(data.shape)
        self.dtype = np.dtype(data.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        from .core.assemble import check_finite

        plane = np.asarray(self.data[key])
        check_finite(plane, "the image")
        return plane


@dataclass
class Prepared:
    """A job ready to compute: input open, plan made, outputs created, journal written."""

    job: Job
    image: ImageData
    plan: Any
    scales: dict[int, Any]
    specs: list[OutputSpec]
    journal: Journal
    done: set[int]
    todo: list[int]
    notes: list[str]
    committing: bool = False
    started: float = field(default_factory=time.perf_counter)

    @property
    def main(self) -> OutputSpec:
        """The denoised output."""
        return self.specs[0]

    @property
    def noise(self) -> OutputSpec | None:
        """The noise-map output, if asked for."""
        return self.specs[1] if len(self.specs) > 1 else None


def _settings(options: RunOptions, job: Job, plan: Any, out_dtype: np.dtype) -> dict[str, Any]:
    return jsonable(
        {
            "params": options.params.to_dict(),
            "axes": plan.axes,
            "dtype": out_dtype.str,
            # Absolute: the same output spelled relative to another folder is the same run.
            "outputs": [os.path.abspath(p) for p in job.outputs],
        }
    )


def prepare(job: Job, options: RunOptions, model: Any, device: Any) -> Prepared | Outcome:
    """Check, open, plan, fit scales, create the outputs and the journal (or take them from the journal).

    Returns an :class:`Outcome` ("skipped") when the outputs already exist.
    Raises the input's or the journal's errors (nothing is created then).
    """
    from .core.normalization import IntensityScale
    from .core.params import FillParams
    from .core.plan import make_plan
    from .core.scales import fit_scales

    journal = Journal(job.output)
    if options.overwrite:
        journal.remove()
    elif journal.exists():
        if not options.resume:
            raise ValueError(
                f"an interrupted run left {journal.folder.name}: "
                "add --resume to continue it, or --overwrite to start over"
            )
    else:
        existing = [p for p in job.outputs if p.exists()]
        if existing and len(existing) == len(job.outputs):
            return Outcome(job, "skipped", "outputs exist (--overwrite replaces them)")
        if existing:
            raise ValueError(f"{existing[0]} exists but not all outputs do; use --overwrite to replace it")
    image = open_image(job.input)
    try:
        axes = options.axes.upper() if options.axes else image.axes
        plan = make_plan(image.shape, image.dtype, options.params, model, device, axes=axes)
        out_dtype = np.dtype(np.float32) if options.dtype == "float32" or image.dtype.kind == "f" else image.dtype
        where = [Path(os.path.abspath(p)) for p in job.outputs]  # workers and a resume may run elsewhere
        specs = [plan_output(where[0], plan.shape, plan.axes, out_dtype, image.scale, image.unit)]
        if job.noise_map:
            specs.append(plan_output(where[1], plan.shape, plan.axes, np.float32, image.scale, image.unit))
        settings = _settings(options, job, plan, out_dtype)
        source_print = fingerprint(job.input, image.data, [plan.key(p) for p in plan.planes])
        total = len(plan.planes)
        if journal.exists():  # --resume
            journal.check(source_print, settings)
            header = journal.header()
            # The parameters as resolved then (e.g. the tile size chosen from the memory free then).
            resolved = FillParams(**header["resolved"])
            plan = make_plan(image.shape, image.dtype, resolved, model, device, axes=axes)
            specs = [OutputSpec(**s) for s in header["outputs"]]
            for spec, path in zip(specs, where):  # journals may hold paths relative to another folder
                spec.path, spec.partial = str(path), str(partial_path(path))
            scales = {int(k): IntensityScale(float(lo), float(hi)) for k, (lo, hi) in header["scales"].items()}
            notes = list(header.get("notes", []))
            committing = header.get("state") == "committing"
            missing = [s.partial for s in specs if not Path(s.partial).exists() and not committing]
            if missing:
                raise JournalMismatch(f"the partial output {missing[0]} is missing; use --overwrite to start over")
            done = {n for n in journal.finished() if 0 <= n < total}
            todo = [] if committing else [n for n in range(total) if n not in done]
            return Prepared(job, image, plan, scales, specs, journal, done, todo, notes, committing)
        notes = list(plan.notes)
        source = _FiniteChecked(image.data) if image.dtype.kind == "f" else image.data
        scales = fit_scales(source, plan, plan.params.normalization, notes)
        created: list[OutputSpec] = []
        try:
            for spec in specs:
                created.append(create(spec))
            header = {
                "input": source_print,
                "settings": settings,
                "resolved": plan.params.to_dict(),
                "planes": total,
                "scales": {str(k): [s.low, s.high] for k, s in scales.items()},
                "notes": notes,
                "outputs": [s.to_dict() for s in specs],
            }
            journal.create(jsonable(header))
        except BaseException:
            discard(created)
            journal.remove()
            raise
        return Prepared(job, image, plan, scales, specs, journal, set(), list(range(total)), notes)
    except BaseException:
        image.close()
        raise


def finished_planes(progress: Any, todo: list[int]) -> list[int]:
    """Plane numbers a Progress with ``event == "plane"`` reports as written (several in stack mode)."""
    if progress.group <= 1:
        return [progress.number]
    first = progress.plane - 1
    return todo[first : first + progress.group]


def metadata_for(prep: Prepared, model: Any, device: Any, result: Any = None) -> dict[str, Any]:
    """The run's metadata for the output files (also when every plane came from the journal)."""
    from .core.devices import resolve_precision
    from .core.engine import DenoiseResult

    if result is None:
        plan = prep.plan
        result = DenoiseResult(
            denoised=None,
            noise_map=None,
            params=plan.params,
            axes=plan.axes,
            model=model.source,
            model_sha256=model.sha256,
            device=str(device),
            seconds=0.0,
            precision=resolve_precision(plan.params.precision, device),
        )
    meta = result.metadata()
    meta["intensity_scales"] = [[s.low, s.high] for _, s in sorted(prep.scales.items())]
    meta["planes"] = len(prep.plan.planes)
    meta["notes"] = list(prep.notes)
    meta["source"] = str(prep.job.input)
    if prep.done:
        meta["resumed_planes"] = len(prep.done)
    return meta


def complete(prep: Prepared, meta: dict[str, Any]) -> None:
    """Store the metadata and rename the outputs to their final names; remove the journal."""
    if not prep.committing:
        for spec in prep.specs:
            finalize(spec, meta)
        prep.journal.set_state("committing")
    # The noise map first: the main output under its final name means "done".
    ordered = prep.specs[1:] + prep.specs[:1]
    commit([s for s in ordered if Path(s.partial).exists()])
    missing = [s.path for s in prep.specs if not Path(s.path).exists()]
    if missing:
        raise OSError(f"{missing[0]} is missing after the rename; use --overwrite to start over")
    prep.journal.remove()


def abandon(prep: Prepared) -> None:
    """Remove a failed job's temporary outputs and journal (final outputs are never touched)."""
    if not prep.committing:
        discard(prep.specs)
        prep.journal.remove()


def run_prepared(prep: Prepared, options: RunOptions, model: Any, device: Any) -> Outcome:
    """Fill the planes still to do, plane by plane into the outputs, then complete the job."""
    from .core.engine import denoise_planes

    result = None
    computed = 0
    if prep.todo:
        out = open_array(prep.main)
        noise = open_array(prep.noise) if prep.noise else None
        bar = None
        if not options.quiet:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(prep.todo), unit="plane", desc=prep.job.input.name, leave=False)
        gen = denoise_planes(
            prep.image.data,
            prep.plan.params,  # resolved: the same tiles and stack size as the planes already done
            axes=prep.plan.axes,
            model=model,
            out=out,
            noise_out=noise,
            noise_map=noise is not None,
            planes=prep.todo,
            scales=prep.scales,
        )
        try:
            while True:
                step = next(gen)
                if step.event == "plane":
                    finished = finished_planes(step, prep.todo)
                    prep.journal.mark(finished)
                    computed += len(finished)
                    if bar is not None:
                        bar.update(len(finished))
                elif bar is not None and step.iteration % 10 == 0:
                    bar.set_postfix_str(f"iteration {step.iteration}/{step.iterations}", refresh=True)
        except StopIteration as stop:
            result = stop.value
        finally:
            gen.close()
            if bar is not None:
                bar.close()
    meta = metadata_for(prep, model, device, result)
    complete(prep, meta)
    return Outcome(
        prep.job,
        "done",
        computed=computed,
        resumed=len(prep.done),
        seconds=time.perf_counter() - prep.started,
        warnings=list(result.warnings) if result is not None else [],
        device=meta.get("device", ""),
        model=meta.get("model", ""),
        summary=result.summary() if result is not None and result.planes else "",
    )


# --- many jobs -----------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    message = text.splitlines()[0] if text else ""
    known = (ValueError, RuntimeError, OSError, KeyError, MemoryError)
    if not isinstance(exc, known) or not message:
        message = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return message


def _disk_full(exc: BaseException) -> OSError | None:
    """The ENOSPC error behind ``exc`` (itself, or what it was raised from), None if there is none."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _disk_full_reason(error: OSError, job: Job, resumable: bool) -> str:
    """One line naming the full device's file and what to do next."""
    message = str(error)
    if not isinstance(error, DiskFullError):
        message = f"disk full: no space left on the device holding {error.filename or job.output}"
    if resumable:
        return f"{message}; free some space, then run the same command with --resume to finish"
    return f"{message}; free some space and run again"


def report_error(outcome: Outcome, batch: bool) -> None:
    """Print a failed job's one-line error on stderr."""
    where = f"{outcome.job.input}: " if batch and not outcome.reason.startswith(outcome.job.input.name) else ""
    print(f"napari-mpid: error: {where}{outcome.reason}", file=sys.stderr)


def run_jobs(
    jobs: list[Job],
    options: RunOptions,
    *,
    batch: bool,
    client: Any = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run every job (serially, or on a Dask ``client``); one :class:`Outcome` per job, in order.

    Failures are reported as they happen (:func:`report_error`); without
    ``keep_going`` the first one stops the batch (the rest are "not run").
    KeyboardInterrupt propagates, leaving the journals for ``--resume``.
    """
    from .api import load_model
    from .core.devices import resolve_device

    device = resolve_device(options.params.device)
    model = load_model(options.params.model, options.params.device)
    if client is not None:
        from .cluster import run_on_cluster

        return run_on_cluster(jobs, options, client, model, device, batch=batch, on_outcome=on_outcome)
    outcomes: list[Outcome] = []
    for k, job in enumerate(jobs):
        outcome = run_one(job, options, model, device)
        if outcome.status == "failed":
            report_error(outcome, batch)
        elif outcome.warnings:
            for warning in outcome.warnings:
                print(f"warning: {job.input.name}: {warning}", file=sys.stderr)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
        if outcome.status == "failed" and not options.keep_going:
            outcomes += [
                Outcome(j, "not run", "stopped after a failure (--keep-going continues)") for j in jobs[k + 1 :]
            ]
            break
    return outcomes


def run_one(job: Job, options: RunOptions, model: Any, device: Any) -> Outcome:
    """Prepare and run one job; errors become a "failed" outcome (KeyboardInterrupt propagates)."""
    try:
        prep = prepare(job, options, model, device)
    except Exception as exc:
        full = _disk_full(exc)
        return Outcome(job, "failed", _disk_full_reason(full, job, False) if full else _one_line(exc))
    if isinstance(prep, Outcome):
        return prep
    try:
        return run_prepared(prep, options, model, device)
    except Exception as exc:
        full = _disk_full(exc)
        if full is not None:  # keep the finished planes for --resume
            return Outcome(job, "failed", _disk_full_reason(full, job, True))
        abandon(prep)
        return Outcome(job, "failed", _one_line(exc))
    finally:
        prep.image.close()


def print_summary(outcomes: list[Outcome], file: Any = None) -> None:
    """One line per job and the counts, e.g. ``summary: 2 done, 1 skipped, 1 failed``."""
    file = file or sys.stdout
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed", "not run")}
    parts = [f"{counts[s]} {s}" for s in ("done", "skipped", "failed")] + (
        [f"{counts['not run']} not run"] if counts["not run"] else []
    )
    print(f"summary: {', '.join(parts)}", file=file)
    for o in outcomes:
        if o.status == "done":
            extra = f" ({o.computed} planes computed, {o.resumed} from the journal, {o.seconds:.1f} s)"
            print(f"  done     {o.job.input} -> {o.job.output}{extra}", file=file)
            if o.summary:
                print(f"           {o.summary}", file=file)
        else:
            print(f"  {o.status:<8} {o.job.input}: {o.reason}", file=file)
