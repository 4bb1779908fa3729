"""Spreading planes over Dask workers (``--workers N`` or ``--scheduler ADDRESS``).

Needs ``dask.distributed`` (``pip install "napari-mpid[cluster]"``). The
client (the ``napari-mpid`` process) does everything that must happen once
per input: it checks the outputs, plans the run (tiles, mask ratio, precision
are resolved there, so every worker uses the same), fits the intensity scales
and creates the outputs under their temporary names. Workers then fill shares
of the planes, each with its own copy of the model (one worker per GPU where
there are several: a worker named N uses GPU N modulo their number), and
write finished planes straight into the outputs: distinct planes are distinct
regions of a TIFF and distinct chunks of an OME-Zarr, so workers never write
the same bytes. Inputs and outputs must therefore be on a file system every
worker sees. The client records each finished share in the journal and
renames the outputs once all planes of an input are done.

The same steps as :mod:`napari_mpid.batch.run`, which this module imports
(never the reverse: the command chooses one or the other).

Because every plane's masks depend only on the seed and its plane number,
the outputs are identical to a serial run with the same seed (on the same
kind of device, with the same number of threads per worker).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..core.params import FillParams
from ..core.run.normalization import IntensityScale
from ..core.steps import run_to_end
from ..files.formats import MissingExtraError
from ..files.read import open_image
from ..files.write import OutputSpec, open_array
from .jobs import STOPPED, Job, Outcome, RunOptions
from .report import one_line, report_error, report_warnings
from .run import Prepared, abandon, complete, load_model_and_device, metadata_for, prepare

__all__ = ["connect", "disconnect", "fill_share", "run_on_cluster", "shares"]


def connect(scheduler: str | None, workers: int | None) -> Any:
    """A ``distributed.Client``: to ``scheduler``, or to a new local cluster of ``workers`` processes (1 thread each).

    Raises
    ------
    MissingExtraError
        dask.distributed is not installed.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MissingExtraError(
            'spreading work over Dask workers needs dask.distributed: pip install "napari-mpid[cluster]"'
        ) from None
    if scheduler:
        try:
            return Client(scheduler, timeout="30s")
        except OSError as exc:
            raise OSError(f"cannot reach the Dask scheduler {scheduler} ({exc})") from None
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
    )
    return Client(cluster)


def disconnect(client: Any) -> None:
    """Close the client and, if it started one, its local cluster."""
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def shares(prep: Prepared) -> list[list[int]]:
    """How a job's remaining planes are split into tasks.

    Context filling: one task per stack (its network is fitted once). Stack
    mode: the groups of planes the serial run fills together. Otherwise one
    task per plane.
    """
    plan = prep.plan
    todo = set(prep.todo)
    if plan.series:
        return [[n for n in series if n in todo] for series in plan.series if todo.intersection(series)]
    size = max(1, plan.stack)
    groups = [prep.todo[i : i + size] for i in range(0, len(prep.todo), size)] if size > 1 else []
    return groups or [[n] for n in prep.todo]


# --- on the workers ------------------------------------------------------------------------

_MODELS: dict[tuple[str, str], Any] = {}
_IMAGES: OrderedDict[str, Any] = OrderedDict()


def _worker_device(requested: str) -> str:
    """The device of this worker: with several GPUs and "auto"/"cuda", the worker's own one."""
    import torch

    if requested not in ("auto", "cuda") or not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return requested
    try:
        from distributed import get_worker

        name = get_worker().name
        index = int(name) if str(name).isdigit() else abs(hash(name))
    except (ImportError, ValueError):
        return requested
    return f"cuda:{index % torch.cuda.device_count()}"


def _image(path: str) -> Any:
    if path not in _IMAGES:
        _IMAGES[path] = open_image(path)
        while len(_IMAGES) > 2:
            _IMAGES.popitem(last=False)[1].close()
    _IMAGES.move_to_end(path)
    return _IMAGES[path]


def fill_share(task: dict[str, Any]) -> dict[str, Any]:
    """Fill some planes of one input into its outputs (runs on a worker).

    ``task`` holds plain data: ``input`` (path), ``axes``, ``params`` (the
    resolved FillParams as a dict), ``scales`` (``{channel: [low, high]}``),
    ``outputs`` (OutputSpec dicts, temporary names) and ``planes``. Returns
    the planes written (on disk when this returns), warnings and timings.
    """
    import torch

    from ..api import load_model
    from ..core.engine import denoise_planes

    try:
        from distributed import get_worker

        torch.set_num_threads(max(1, int(get_worker().state.nthreads)))
    except (ImportError, ValueError, AttributeError):
        pass
    params = FillParams(**task["params"])
    params = params.replace(device=_worker_device(params.device))
    key = (params.model, params.device)
    if key not in _MODELS:
        _MODELS[key] = load_model(params.model, params.device)
    specs = [OutputSpec(**s) for s in task["outputs"]]
    out = open_array(specs[0])
    noise = open_array(specs[1]) if len(specs) > 1 else None
    scales = {int(k): IntensityScale(float(lo), float(hi)) for k, (lo, hi) in task["scales"].items()}
    gen = denoise_planes(
        _image(task["input"]).data,
        params,
        axes=task["axes"],
        model=_MODELS[key],
        out=out,
        noise_out=noise,
        noise_map=noise is not None,
        planes=task["planes"],
        scales=scales,
    )
    result = run_to_end(gen)
    return {
        "planes": list(task["planes"]),
        "warnings": list(result.warnings),
        "seconds": result.seconds,
        "device": result.device,
    }


# --- on the client -------------------------------------------------------------------------


def run_on_cluster(
    jobs: list[Job],
    options: RunOptions,
    client: Any,
    *,
    batch: bool,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run every job with its planes spread over Dask workers.

    Every job is prepared here (checked, planned, scales fitted, outputs and
    journal created), its planes are filled on the workers, and each job is
    completed here as its last share returns. Errors, warnings and "not run"
    are reported as by :func:`napari_mpid.batch.run.run_jobs`, and the
    outputs are the same.

    Parameters
    ----------
    jobs : list of Job
        From :func:`~napari_mpid.batch.jobs.plan_jobs`, outputs checked.
    options : RunOptions
        Parameters and options of the run.
    client : distributed.Client
        From :func:`connect`.
    batch : bool
        Whether this is batch mode (error lines then name the input).
    on_outcome : callable, optional
        Called with each job's outcome, in order, once all are known.

    Returns
    -------
    list of Outcome
        One per job, in order.
    """
    from distributed import as_completed

    model, device = load_model_and_device(options)
    outcomes: dict[int, Outcome] = {}
    prepared: dict[int, Prepared] = {}
    futures: dict[Any, tuple[int, list[int]]] = {}
    pending: dict[int, int] = {}
    found: dict[int, list[str]] = {}
    stop = False

    def fail(k: int, exc: BaseException | str) -> None:
        nonlocal stop
        outcome = Outcome(jobs[k], "failed", exc if isinstance(exc, str) else one_line(exc))
        outcomes[k] = outcome
        report_error(outcome, batch)
        if k in prepared:
            abandon(prepared.pop(k))
        for future, (owner, _) in list(futures.items()):
            if owner == k:
                future.cancel()
        if not options.keep_going:
            stop = True

    for k, job in enumerate(jobs):
        if stop:
            break
        try:
            prep = prepare(job, options, model, device)
        except Exception as exc:
            fail(k, exc)
            continue
        if isinstance(prep, Outcome):
            outcomes[k] = prep
            continue
        prep.image.close()  # the workers open the input themselves
        prepared[k] = prep
        tasks = shares(prep)
        pending[k] = len(tasks)
        found[k] = []
        common = {
            "input": str(job.input),
            "axes": prep.plan.axes,
            "params": prep.plan.params.to_dict(),
            "scales": {str(c): [s.low, s.high] for c, s in prep.scales.items()},
            "outputs": [s.to_dict() for s in prep.specs],
        }
        for planes in tasks:
            future = client.submit(fill_share, {**common, "planes": planes}, pure=False)
            futures[future] = (k, planes)

    bar = None
    if not options.quiet and futures:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(p) for _, p in futures.values()), unit="plane", desc="denoising")
    computed: dict[int, int] = dict.fromkeys(prepared, 0)
    devices: dict[int, set[str]] = {}
    try:
        for future in as_completed(list(futures)):
            k, planes = futures.pop(future)
            if stop:
                break
            if k not in prepared:
                continue
            prep = prepared[k]
            try:
                done = future.result()
                prep.journal.mark(done["planes"])
            except Exception as exc:
                fail(k, exc)
                continue
            computed[k] += len(planes)
            found[k] += done["warnings"]
            devices.setdefault(k, set()).add(done["device"])
            if bar is not None:
                bar.update(len(planes))
            pending[k] -= 1
            if pending[k] == 0:
                _finish(prep, model, device, computed[k], found[k], devices.get(k, set()), outcomes, fail, k)
                prepared.pop(k, None)
        for k, prep in list(prepared.items()):  # inputs with nothing left to compute
            if k not in outcomes and not stop and pending.get(k, 0) == 0:
                _finish(prep, model, device, 0, [], set(), outcomes, fail, k)
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    finally:
        if bar is not None:
            bar.close()
    result = []
    for k, job in enumerate(jobs):
        outcome = outcomes.get(k) or Outcome(job, "not run", STOPPED)
        report_warnings(outcome)
        result.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return result


def _merge_warnings(warnings: list[str]) -> list[str]:
    """One warning per kind: the out-of-range counts of all shares added up."""
    total, others = 0, []
    pattern = re.compile(r"^(\d+) pixel value\(s\) lie outside")
    template = None
    for w in warnings:
        m = pattern.match(w)
        if m:
            total += int(m.group(1))
            template = w[m.end(1) :]
        elif w not in others:
            others.append(w)
    return ([f"{total}{template}"] if template else []) + others


def _finish(
    prep: Prepared,
    model: Any,
    device: Any,
    computed: int,
    warnings: list[str],
    devices: set[str],
    outcomes: dict[int, Outcome],
    fail: Any,
    k: int,
) -> None:
    """Store the metadata and rename the outputs of a job whose planes are all done."""
    try:
        meta = metadata_for(prep, model, device)
        meta["warnings"] = merged = _merge_warnings(warnings)
        meta["seconds"] = round(time.perf_counter() - prep.started, 2)
        if devices:
            meta["device"] = ", ".join(sorted(devices))
        complete(prep, meta)
    except Exception as exc:
        fail(k, exc)
        return
    outcomes[k] = Outcome(
        prep.job,
        "done",
        computed=computed,
        resumed=len(prep.done),
        seconds=time.perf_counter() - prep.started,
        warnings=merged,
        device=meta.get("device", ""),
        model=meta.get("model", ""),
    )
