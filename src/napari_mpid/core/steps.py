"""Driving the core's generators: the long work yields progress and *returns* its result.

A generator's return value arrives as ``StopIteration.value``; these two
helpers are the only places that receive it, so callers read as plain
loops: :func:`run_to_end` for scripts (optionally watching every step) and
:class:`Returning` for a ``for`` loop that re-yields each step in its own
terms.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["Returning", "run_to_end"]

Step = TypeVar("Step")
Result = TypeVar("Result")


def run_to_end(generator: Generator[Step, Any, Result], on_step: Callable[[Step], Any] | None = None) -> Result:
    """Exhaust ``generator``, passing each yielded value to ``on_step``; return the generator's return value.

    The generator is closed (its ``finally`` clauses run) if ``on_step``
    raises or the run is interrupted.
    """
    try:
        while True:
            try:
                step = next(generator)
            except StopIteration as stop:
                return stop.value
            if on_step is not None:
                on_step(step)
    finally:
        generator.close()


class Returning(Generic[Step, Result]):
    """A generator to iterate with a ``for`` loop, its return value kept in :attr:`result` afterwards.

    >>> fill = Returning(filler.fill(part, number, 0))  # doctest: +SKIP
    >>> for tile, t in fill:  # doctest: +SKIP
    ...     report(t)
    >>> filled = fill.result  # doctest: +SKIP
    """

    def __init__(self, generator: Generator[Step, Any, Result]) -> None:
        self.generator = generator
        #: The generator's return value, once the loop has run to its end.
        self.result: Result | None = None

    def __iter__(self) -> Iterator[Step]:
        self.result = yield from self.generator
