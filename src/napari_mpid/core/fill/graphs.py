"""Running filling iterations, eagerly or replayed as one captured CUDA graph."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence

import torch

__all__ = ["GRAPH_WARMUP", "cuda_graphs_supported", "run_steps"]

#: Eager iterations before a CUDA graph is captured (allocator and cuDNN
#: autotuning settle; also real iterations of the fill).
GRAPH_WARMUP = 3


def cuda_graphs_supported(device: torch.device, generators: Sequence[torch.Generator] = ()) -> bool:
    """Whether an iteration on ``device`` can be captured as a CUDA graph.

    Needs a CUDA device and, for mask generators other than the default one,
    ``CUDAGraph.register_generator_state`` (graph-safe private generators).
    """
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return not generators or hasattr(torch.cuda.CUDAGraph, "register_generator_state")


def run_steps(
    step: Callable[[], None],
    iterations: int,
    *,
    capture: bool = False,
    generators: Sequence[torch.Generator] = (),
    warmup: int = GRAPH_WARMUP,
) -> Iterator[int]:
    """Run ``step`` ``iterations`` times, yielding t = 1..T after each.

    With ``capture`` (CUDA only), the first ``warmup`` iterations run eagerly
    on a side stream, then one iteration is captured as a CUDA graph and
    replayed for the rest: a replay launches the ~300 kernels of an iteration
    (mask draw, forward, loss, backward, Adam step, running-average update)
    with one call, which removes the launch and Python overhead that dominates
    small planes. ``step`` must then work on fixed buffers only (in-place
    updates, masks drawn from ``generators``, no host synchronisation), and
    the optimiser must be capturable. If capture fails, the remaining
    iterations run eagerly with a warning: results are the same, only slower.
    """
    if not capture or iterations <= warmup:
        for t in range(iterations):
            step()
            yield t + 1
        return
    side = torch.cuda.Stream()
    for t in range(warmup):
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            step()
        torch.cuda.current_stream().wait_stream(side)
        yield t + 1
    graph = torch.cuda.CUDAGraph()
    for generator in generators:
        graph.register_generator_state(generator)
    try:
        with torch.cuda.graph(graph):
            step()  # recorded, not executed
    except RuntimeError as exc:  # pragma: no cover - needs a GPU
        warnings.warn(f"CUDA graph capture failed ({exc}); continuing without graphs", RuntimeWarning, stacklevel=2)
        for t in range(warmup, iterations):
            step()
            yield t + 1
        return
    for t in range(warmup, iterations):  # pragma: no cover - needs a GPU
        graph.replay()
        yield t + 1
