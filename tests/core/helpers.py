"""Helpers shared by the core tests."""

from __future__ import annotations


def run(gen):
    """Run a denoising generator to the end; return (progress list, result)."""
    steps = []
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        return steps, stop.value
