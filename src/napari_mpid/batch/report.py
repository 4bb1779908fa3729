"""What the user reads about a batch: one-line errors, warnings, and the closing summary.

Errors and warnings go to stderr as they happen, one line each, so that a
long batch shows a failure at once; the summary goes to stdout at the end.
"""

from __future__ import annotations

import sys
from typing import Any

from .jobs import Outcome

__all__ = ["one_line", "print_summary", "report_error", "report_warnings"]


def one_line(exc: BaseException) -> str:
    """An exception as the one line a failed job reports.

    Parameters
    ----------
    exc : BaseException
        What stopped the job.

    Returns
    -------
    str
        The first line of its message; prefixed with the exception's type
        where the message alone would not say what went wrong (an unexpected
        kind of error, or no message).
    """
    text = str(exc).strip()
    message = text.splitlines()[0] if text else ""
    known = (ValueError, RuntimeError, OSError, KeyError, MemoryError)
    if not isinstance(exc, known) or not message:
        message = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return message


def report_error(outcome: Outcome, batch: bool) -> None:
    """Print a failed job's one-line error on stderr.

    Parameters
    ----------
    outcome : Outcome
        A "failed" outcome.
    batch : bool
        Whether several inputs run: the line then names the input.
    """
    where = f"{outcome.job.input}: " if batch and not outcome.reason.startswith(outcome.job.input.name) else ""
    print(f"napari-mpid: error: {where}{outcome.reason}", file=sys.stderr)


def report_warnings(outcome: Outcome) -> None:
    """Print a job's warnings on stderr, one line each, naming its input.

    Parameters
    ----------
    outcome : Outcome
        Any outcome (most have no warnings).
    """
    for warning in outcome.warnings:
        print(f"warning: {outcome.job.input.name}: {warning}", file=sys.stderr)


def print_summary(outcomes: list[Outcome], file: Any = None) -> None:
    """One line per job and the counts, e.g. ``summary: 2 done, 1 skipped, 1 failed``.

    Parameters
    ----------
    outcomes : list of Outcome
        One per job, in order.
    file : file-like, optional
        Where to print (default: stdout).
    """
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
