"""CUDA-graph replay of filling iterations: same results as eager iterations.

The graph tests need a GPU and are skipped elsewhere; the CPU tests check the
parts that run everywhere (the driver's eager path, the switch, validation).
"""

from __future__ import annotations

import warnings

import pytest
import torch

from napari_mpid.core.fill.graphs import GRAPH_WARMUP, cuda_graphs_supported, run_steps
from napari_mpid.core.fill.settings import FillSettings
from napari_mpid.core.fill.single import IterativeFiller
from napari_mpid.core.fill.stacked import StackedFiller
from napari_mpid.core.model.checkpoints import load_model
from napari_mpid.core.params import FillParams, ParameterError

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")


def test_run_steps_eager_counts_every_iteration():
    calls = []
    assert list(run_steps(lambda: calls.append(1), 5)) == [1, 2, 3, 4, 5]
    assert len(calls) == 5


def test_graphs_are_not_used_on_cpu():
    assert not cuda_graphs_supported(torch.device("cpu"))


def test_cuda_graphs_parameter_is_validated():
    assert FillParams().cuda_graphs == "auto"
    with pytest.raises(ParameterError, match="cuda_graphs"):
        FillParams(cuda_graphs="always")


def test_cpu_filler_with_graphs_requested_equals_eager():
    model = load_model("random-init:1:single", "cpu")
    image = torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    results = []
    for graph in (False, True):
        filler = IterativeFiller(
            model.network, model.state, FillSettings(beta=0.9, mask_ratio=0.85, learning_rate=2e-3, cuda_graph=graph)
        )
        for _ in filler.run(image, 4, generator=torch.Generator().manual_seed(1)):
            pass
        results.append(filler.running_average.clone())
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)


def _fill(model, image, graph: bool, precision: str, iterations: int) -> torch.Tensor:
    filler = IterativeFiller(
        model.network,
        model.state,
        FillSettings(
            beta=0.9, mask_ratio=0.85, learning_rate=2e-3, precision=precision, channels_last=True, cuda_graph=graph
        ),
    )
    gen = torch.Generator("cuda").manual_seed(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed capture warns: fail the test instead
        for _ in filler.run(image, iterations, generator=gen):
            pass
    torch.cuda.synchronize()
    return filler.running_average.clone()


@needs_cuda
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_graph_replay_matches_eager_on_cuda(precision):
    torch.backends.cudnn.deterministic = True
    model = load_model("real-noise", "cuda")
    image = torch.rand(1, 1, 96, 96, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    iterations = GRAPH_WARMUP + 12
    eager = _fill(model, image, False, precision, iterations)
    graphed = _fill(model, image, True, precision, iterations)
    # Same masks (graph-safe generator) and the same kernels: equal up to
    # floating-point reassociation inside cuDNN.
    torch.testing.assert_close(graphed, eager, rtol=0, atol=2e-3)
    assert (graphed != image).any()


@needs_cuda
def test_stacked_graph_replay_matches_eager_on_cuda():
    model = load_model("real-noise", "cuda")
    images = torch.rand(3, 1, 1, 64, 64, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    out = []
    for graph in (False, True):
        filler = StackedFiller(
            model.network, model.state, FillSettings(beta=0.9, mask_ratio=0.85, learning_rate=2e-3, cuda_graph=graph)
        )
        gens = [torch.Generator("cuda").manual_seed(i) for i in range(3)]
        for _ in filler.run(images, GRAPH_WARMUP + 8, generators=gens):
            pass
        out.append(filler.running_average.clone())
    torch.testing.assert_close(out[1], out[0], rtol=0, atol=2e-3)


def _fill_held_out(model, image, holdout, graph: bool, iterations: int):
    filler = IterativeFiller(
        model.network,
        model.state,
        FillSettings(beta=0.9, mask_ratio=0.5, learning_rate=2e-3, channels_last=True, cuda_graph=graph),
    )
    gen = torch.Generator(image.device).manual_seed(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in filler.run(image, iterations, generator=gen, holdout=holdout):
            pass
    return filler.held_out_average().clone(), filler.validation.clone()


def test_held_out_bookkeeping_matches_the_closed_form_on_cpu():
    # The device-side beta**t (kept so that the step can be captured) gives the same
    # corrected average as beta**t computed on the host.
    model = load_model("random-init:1:single", "cpu")
    image = torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    holdout = (torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(2)) < 0.05).float()
    filler = IterativeFiller(model.network, model.state, FillSettings(beta=0.9, mask_ratio=0.5, learning_rate=2e-3))
    for _ in filler.run(image, 7, generator=torch.Generator().manual_seed(1), holdout=holdout):
        pass
    decay = 0.9**7
    expected = torch.where(holdout > 0, (filler.running_average - decay * image) / (1 - decay), filler.running_average)
    torch.testing.assert_close(filler.held_out_average(), expected, rtol=1e-5, atol=1e-6)
    assert (filler.validation > 0).all()


@needs_cuda
def test_held_out_filling_is_captured_and_matches_eager_on_cuda():
    # The auto preset's filling (held-out pixels, scored every iteration) replayed as a graph.
    torch.backends.cudnn.deterministic = True
    model = load_model("real-noise", "cuda")
    image = torch.rand(1, 1, 96, 96, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    holdout = (torch.rand(1, 1, 96, 96, device="cuda", generator=torch.Generator("cuda").manual_seed(1)) < 0.04).float()
    iterations = GRAPH_WARMUP + 12
    eager, eager_scores = _fill_held_out(model, image, holdout, False, iterations)
    graphed, graphed_scores = _fill_held_out(model, image, holdout, True, iterations)
    torch.testing.assert_close(graphed, eager, rtol=0, atol=2e-3)
    torch.testing.assert_close(graphed_scores, eager_scores, rtol=1e-2, atol=1e-5)
    assert (graphed_scores > 0).all()  # every replayed iteration wrote its own score
