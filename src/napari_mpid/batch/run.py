"""Running jobs: inputs to outputs, plane by plane, resumable (what ``napari-mpid denoise`` runs).

For every input (:class:`~napari_mpid.batch.jobs.Job`), once its output
paths were checked (:func:`~napari_mpid.batch.jobs.check_outputs`):

1. the input is opened lazily and validated against the parameters
   (:func:`napari_mpid.core.run.plan.make_plan`), its intensity scales are fitted
   once (one pass over its planes, which also refuses NaN/Inf);
2. the outputs are created under temporary names (``<name>.partial``) with
   their final shape, axes and pixel size, and a journal is started beside
   the main output (:mod:`napari_mpid.batch.journal`);
3. the engine writes each finished plane straight into the outputs; the
   journal records it once it is on disk;
4. the run's metadata is stored, and the outputs are renamed to their final
   names together.

A run killed at any moment is continued with ``--resume``: finished planes
are not computed again, and the outputs equal those of an uninterrupted run.
A full disk stops the job with a one-line error; once outputs and journal
exist, they are kept, so that ``--resume`` finishes the job after space is
freed (the outputs' space is reserved when they are created, so a disk that
is too small is usually found before any plane is computed).
An input whose outputs all exist (and have no journal) is *skipped* unless
``--overwrite`` is given.

:func:`run_jobs` runs the jobs one after the other in this process;
:mod:`napari_mpid.batch.cluster` spreads their planes over Dask workers with
the same steps (it imports this module, never the reverse).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.params import FillParams
from ..core.run.normalization import IntensityScale
from ..core.steps import run_to_end
from ..files.disk import DiskFullError
from ..files.metadata import jsonable
from ..files.read import ImageData, open_image
from ..files.write import (
    OutputSpec,
    commit,
    create,
    discard,
    finalize,
    open_array,
    partial_path,
    plan_output,
)
from .jobs import STOPPED, Job, Outcome, RunOptions
from .journal import Journal, JournalMismatch, fingerprint
from .report import one_line, report_error, report_warnings

if TYPE_CHECKING:  # the results module imports torch; batch planning does not need it
    from ..core.results import Progress

__all__ = [
    "Prepared",
    "abandon",
    "complete",
    "finished_planes",
    "load_model_and_device",
    "metadata_for",
    "prepare",
    "run_jobs",
    "run_one",
    "run_prepared",
]

# --- one job -------------------------------------------------------------------------------


class _FiniteChecked:
    """Reads planes of a float source and refuses NaN/Inf (during the scale fitting pass)."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self.shape = tuple(data.shape)
        self.dtype = np.dtype(data.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        from ..core.run.assemble import check_finite

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

    Parameters
    ----------
    job : Job
        The input and its outputs.
    options : RunOptions
        Parameters and options of the run (``resume``, ``overwrite``).
    model : LoadedModel
        From :func:`load_model_and_device`.
    device : torch.device
        Where the planes will be filled.

    Returns
    -------
    Prepared or Outcome
        The job ready to compute, or a "skipped" outcome when all its
        outputs already exist (and no journal asks to resume).

    Raises
    ------
    Exception
        The input's, the plan's or the journal's errors; nothing is left on disk then.
    """
    from ..core.run.plan import make_plan
    from ..core.run.scales import fit_scales

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
        if plan.params.noise_profile is not None:
            from ..core.noise_profile import load_profile, profile_notes

            path = plan.params.noise_profile
            notes.extend(profile_notes(load_profile(path), path, image.dtype))
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
    from ..core.engine import DenoiseResult
    from ..core.run.devices import resolve_precision

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
    """Fill the planes still to do, plane by plane into the outputs, then complete the job.

    Parameters
    ----------
    prep : Prepared
        From :func:`prepare`.
    options : RunOptions
        Parameters and options of the run (``quiet`` hides the progress bar).
    model : LoadedModel
        From :func:`load_model_and_device`.
    device : torch.device
        Where the planes are filled.

    Returns
    -------
    Outcome
        "done", with the planes computed and resumed, the time and the warnings.
    """
    from ..core.engine import denoise_planes

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

        def record(step: Progress) -> None:
            nonlocal computed
            if step.event == "plane":
                finished = finished_planes(step, prep.todo)
                prep.journal.mark(finished)
                computed += len(finished)
                if bar is not None:
                    bar.update(len(finished))
            elif bar is not None and step.iteration % 10 == 0:
                bar.set_postfix_str(f"iteration {step.iteration}/{step.iterations}", refresh=True)

        try:
            result = run_to_end(gen, record)
        finally:
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


def load_model_and_device(options: RunOptions) -> tuple[Any, Any]:
    """The model and device a batch runs with, loaded once in this process.

    Parameters
    ----------
    options : RunOptions
        The batch's options (``params.model``, ``params.device``).

    Returns
    -------
    model : LoadedModel
        The checkpoint, loaded on the device.
    device : torch.device
        The device "auto" (or the one named) resolves to.
    """
    from ..api import load_model
    from ..core.run.devices import resolve_device

    device = resolve_device(options.params.device)
    model = load_model(options.params.model, options.params.device)
    return model, device


def run_jobs(
    jobs: list[Job],
    options: RunOptions,
    *,
    batch: bool,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run every job in this process, one after the other.

    Failures are reported as they happen (:func:`~napari_mpid.batch.report.report_error`);
    without ``keep_going`` the first one stops the batch (the rest are "not
    run"). KeyboardInterrupt propagates, leaving the journals for
    ``--resume``. :func:`napari_mpid.batch.cluster.run_on_cluster` is the same
    on Dask workers.

    Parameters
    ----------
    jobs : list of Job
        From :func:`~napari_mpid.batch.jobs.plan_jobs`, outputs checked.
    options : RunOptions
        Parameters and options of the run.
    batch : bool
        Whether this is batch mode (error lines then name the input).
    on_outcome : callable, optional
        Called with each job's outcome as soon as it is known.

    Returns
    -------
    list of Outcome
        One per job, in order.
    """
    model, device = load_model_and_device(options)
    outcomes: list[Outcome] = []
    for k, job in enumerate(jobs):
        outcome = run_one(job, options, model, device)
        if outcome.status == "failed":
            report_error(outcome, batch)
        else:
            report_warnings(outcome)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
        if outcome.status == "failed" and not options.keep_going:
            outcomes += [Outcome(j, "not run", STOPPED) for j in jobs[k + 1 :]]
            break
    return outcomes


def run_one(job: Job, options: RunOptions, model: Any, device: Any) -> Outcome:
    """Prepare and run one job; errors become a "failed" outcome (KeyboardInterrupt propagates).

    Parameters
    ----------
    job, options, model, device
        As for :func:`prepare`.

    Returns
    -------
    Outcome
        "done", "skipped" or "failed" (with a one-line reason; a full disk
        keeps the finished planes and says to resume).
    """
    try:
        prep = prepare(job, options, model, device)
    except Exception as exc:
        full = _disk_full(exc)
        return Outcome(job, "failed", _disk_full_reason(full, job, False) if full else one_line(exc))
    if isinstance(prep, Outcome):
        return prep
    try:
        return run_prepared(prep, options, model, device)
    except Exception as exc:
        full = _disk_full(exc)
        if full is not None:  # keep the finished planes for --resume
            return Outcome(job, "failed", _disk_full_reason(full, job, True))
        abandon(prep)
        return Outcome(job, "failed", one_line(exc))
    finally:
        prep.image.close()
