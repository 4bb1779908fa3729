"""Held-out pixels and early stopping: a J-invariant score of the filling that needs no clean image."""

from __future__ import annotations

import numpy as np

__all__ = ["HOLDOUT_FRACTION", "EarlyStop"]

#: Fraction of pixels held out of the filling to score it (not chosen by measurement:
#: docs/constants.md).
HOLDOUT_FRACTION = 0.04


class EarlyStop:
    """Stop the filling once the held-out score has not improved for a while.

    The score is noisy from one iteration to the next, so it is smoothed over
    ``window`` iterations; the filling stops after ``patience`` iterations
    without a new best (and not before ``minimum``). The best running
    average is kept by the caller when :meth:`update` says it improved.
    """

    def __init__(self, window: int = 10, patience: int = 40, minimum: int = 60) -> None:
        self.window, self.patience, self.minimum = window, patience, minimum
        self.best = np.inf
        self.best_iteration = 0
        self.stopped_at: int | None = None

    def update(self, scores: np.ndarray) -> tuple[bool, bool]:
        """Scores of iterations 1..t so far; returns (improved, stop)."""
        t = len(scores)
        smoothed = float(np.mean(scores[-self.window :]))
        improved = t >= self.window and smoothed < self.best
        if improved:
            self.best, self.best_iteration = smoothed, t
        stop = t >= self.minimum and t - self.best_iteration >= self.patience
        if stop:
            self.stopped_at = t
        return improved, stop
