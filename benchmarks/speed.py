"""Speed of iterative filling: ms per iteration and seconds per plane, side by side.

Not a test. Every configuration is timed in the same process, interleaved
over ``--rounds`` so that a busy machine affects all of them alike; the
fastest round is reported (the least disturbed). On CUDA it also reports
peak device memory.

Examples
--------
CPU, 256x256 gray (the issue's CPU target)::

    python benchmarks/speed.py --device cpu --sizes 256 --threads 2

Where the time goes (operator table), e.g. before/after our padding and head::

    python benchmarks/speed.py --device cpu --sizes 256 --threads 1 --profile "bf16 channels_last stock ops"

GPU, one prepared call::

    python benchmarks/speed.py --device cuda --sizes 256 512 1024 --stacks 1 8 32 --json $OUT/speed.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import time
from datetime import datetime, timezone

import torch
from torch.nn import functional as F

from napari_mpid.core.fill import graphs
from napari_mpid.core.fill import single as filling
from napari_mpid.core.fill.settings import FillSettings
from napari_mpid.core.fill.single import IterativeFiller
from napari_mpid.core.fill.stacked import StackedFiller
from napari_mpid.core.model import network
from napari_mpid.core.model.checkpoints import load_model
from napari_mpid.core.run.devices import resolve_device

VARIANTS = {
    # The authors' arithmetic and PyTorch's stock reflection padding and 1x1 head.
    "reference ops fp32": {"precision": "float32", "channels_last": False, "stock_ops": True},
    "eager fp32": {"precision": "float32", "channels_last": False},
    "fp32 channels_last": {"precision": "float32", "channels_last": True},
    "bf16 channels_last stock ops": {"precision": "bfloat16", "channels_last": True, "stock_ops": True},
    "bf16 channels_last": {"precision": "bfloat16", "channels_last": True},
    # CUDA only: one captured graph per iteration, replayed.
    "fp32 channels_last graph": {"precision": "float32", "channels_last": True, "cuda_graph": True},
    "bf16 channels_last graph": {"precision": "bfloat16", "channels_last": True, "cuda_graph": True},
}
CUDA_ONLY = {name for name, v in VARIANTS.items() if v.get("cuda_graph")}


@contextlib.contextmanager
def stock_ops(enabled: bool):
    """Temporarily use F.pad(mode="reflect") and nn.Conv2d for the head, as plain PyTorch code would."""
    if not enabled:
        yield
        return
    saved = network.reflect_pad, filling.pointwise_conv
    network.reflect_pad = lambda x, p: F.pad(x, (p,) * 4, mode="reflect") if p else x
    filling.pointwise_conv = lambda x, conv: conv(x)
    try:
        yield
    finally:
        network.reflect_pad, filling.pointwise_conv = saved


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_run(run, device: torch.device, iterations: int, warm: int = 2) -> tuple[float, float]:
    """Time the rest of a filling generator after ``warm`` steps; (ms per iteration, peak MiB)."""
    for _ in range(warm):  # allocator, oneDNN/cuDNN kernel choice, graph capture
        next(run)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    start = time.perf_counter()
    for _ in run:
        pass
    _sync(device)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    return 1000 * (time.perf_counter() - start) / iterations, peak


def time_single(model, device, size: int, iterations: int, variant: dict) -> tuple[float, float]:
    variant = dict(variant)
    stock = variant.pop("stock_ops", False)
    filler = IterativeFiller(
        model.network, model.state, FillSettings(beta=0.9, mask_ratio=0.85, learning_rate=2e-3, **variant)
    )
    image = torch.rand(1, model.network.channels, size, size, device=device)
    gen = torch.Generator(device).manual_seed(0)
    # Graphs replay from the 4th iteration: time after the warm-up and capture.
    warm = graphs.GRAPH_WARMUP + 1 if variant.get("cuda_graph") else 2
    with stock_ops(stock):
        return _time_run(filler.run(image, iterations + warm, generator=gen), device, iterations, warm)


def time_stack(model, device, size: int, planes: int, iterations: int, variant: dict) -> tuple[float, float]:
    """Like time_single for stack mode; the time is per plane-iteration."""
    graph = bool(variant.get("cuda_graph"))
    filler = StackedFiller(
        model.network,
        model.state,
        FillSettings(beta=0.9, mask_ratio=0.85, learning_rate=2e-3, precision=variant["precision"], cuda_graph=graph),
    )
    images = torch.rand(planes, 1, model.network.channels, size, size, device=device)
    gens = [torch.Generator(device).manual_seed(i) for i in range(planes)]
    warm = graphs.GRAPH_WARMUP + 1 if graph else 2
    ms, peak = _time_run(filler.run(images, iterations + warm, generators=gens), device, iterations, warm)
    return ms / planes, peak


def profile(model, device: torch.device, size: int, iterations: int, name: str) -> int:
    """Print where the time of ``iterations`` iterations of one variant goes, by operator."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    variant = dict(VARIANTS[name])
    stock = variant.pop("stock_ops", False)
    filler = IterativeFiller(
        model.network, model.state, FillSettings(beta=0.9, mask_ratio=0.85, learning_rate=2e-3, **variant)
    )
    image = torch.rand(1, model.network.channels, size, size, device=device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with stock_ops(stock):
        run = filler.run(image, iterations + 2, generator=torch.Generator(device).manual_seed(0))
        next(run), next(run)
        with torch_profile(activities=activities) as prof:
            for _ in run:
                pass
            _sync(device)
    print(f"{name}, {size}x{size}, {iterations} iterations, {torch.get_num_threads()} threads")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256])
    parser.add_argument("--stacks", type=int, nargs="*", default=[], help="stack-mode plane counts to time")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--channels", type=int, default=1, help="1 = gray model, 3 = RGB model")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="default: all that run on the device")
    parser.add_argument(
        "--stack-variants", nargs="+", default=["bf16 channels_last"], choices=list(VARIANTS), help="for --stacks"
    )
    parser.add_argument("--json")
    parser.add_argument(
        "--profile",
        choices=list(VARIANTS),
        help="instead of the table: torch.profiler breakdown of this variant at the first size (top operators)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    variants = args.variants or [v for v in VARIANTS if device.type == "cuda" or v not in CUDA_ONLY]
    model = load_model(f"random-init:{args.channels}:single", device)
    if args.profile:
        return profile(model, device, args.sizes[0], args.iterations, args.profile)
    results: dict[str, list[float]] = {}
    peaks: dict[str, float] = {}
    for _ in range(args.rounds):
        for size in args.sizes:
            for name in variants:
                key = f"{size}x{size} plane-by-plane {name}"
                ms, peak = time_single(model, device, size, args.iterations, VARIANTS[name])
                results.setdefault(key, []).append(ms)
                peaks[key] = peak
            for planes in args.stacks:
                for name in args.stack_variants:
                    key = f"{size}x{size} stack of {planes} {name}"
                    ms, peak = time_stack(model, device, size, planes, args.iterations, VARIANTS[name])
                    results.setdefault(key, []).append(ms)
                    peaks[key] = peak
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(
        f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"{args.channels}-channel model, best of {args.rounds} rounds of {args.iterations} iterations"
    )
    print(
        f"{'configuration':56s} {'ms/iter (per plane)':>20s} {'s/plane fast':>13s} {'s/plane quality':>16s} {'peak MiB':>9s}"
    )
    rows = []
    for key, values in results.items():
        best = min(values)
        rows.append({"configuration": key, "ms_per_iteration": best, "all_rounds_ms": values, "peak_mib": peaks[key]})
        print(f"{key:56s} {best:20.1f} {best * 0.2:13.1f} {best:16.1f} {peaks[key]:9.0f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "device": f"{device} ({name})",
                    "torch": str(torch.__version__),
                    "threads": torch.get_num_threads(),
                    "date": datetime.now(timezone.utc).isoformat(),
                    "rows": rows,
                },
                fh,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
