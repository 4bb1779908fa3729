"""The widget's time estimate before a run against the run's actual time, on this machine.

Not a test. Calibrates this machine once (:func:`napari_mpid.core.engine.timing.calibrate`,
into a temporary cache unless ``--cache`` is given, so the user's own cache is
left alone), then for each case and preset: the estimate the widget would
show (:func:`napari_mpid.core.engine.estimate.estimate_seconds` with the data, so the
auto preset's network decision is asked on the first plane), the old fixed-table
figure for comparison, the actual wall time of the run through
:func:`napari_mpid.api.denoise_iter` (model loading included), and the total the
running ETA (:class:`~napari_mpid.core.engine.timing.EtaTracker`) predicted once 10 %
and 50 % of the run were done.

Cases: a 256x256 plane, a 1024x1024 plane and an 8-plane 256x256 z-stack of the
synthetic fluorescence sample (:mod:`napari_mpid.synthetic`: shot and read
noise). Iterations are kept small (``--iterations``, and fewer for the large
plane): the estimate counts every iteration, so its accuracy at T=20 says how
it scales to T=200.

Example (as run for docs/benchmarks.md, "Time estimate vs actual")::

    nice -n 5 env OMP_NUM_THREADS=1 python benchmarks/estimate_accuracy.py \\
        --iterations 20 --large-iterations 2 --json benchmarks/results/estimate_accuracy.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from napari_mpid.api import denoise_iter
from napari_mpid.core.cache import CACHE_ENV
from napari_mpid.core.engine import timing
from napari_mpid.core.engine.estimate import estimate_seconds, network_for, table_seconds
from napari_mpid.core.model.checkpoints import load_model
from napari_mpid.core.params import preset
from napari_mpid.core.run.devices import resolve_device, resolve_precision
from napari_mpid.core.run.plan import make_plan
from napari_mpid.core.steps import run_to_end
from napari_mpid.synthetic import fluorescence_stack

#: Case name -> (planes, side, axes).
CASES = {"256x256": (1, 256, "YX"), "1024x1024": (1, 1024, "YX"), "8x256x256 z-stack": (8, 256, "ZYX")}


def case_data(planes: int, side: int, axes: str) -> np.ndarray:
    noisy, _ = fluorescence_stack(planes, side, seed=1)
    return noisy if axes.startswith("Z") else noisy[0]


def run_case(data: np.ndarray, axes: str, params, model, device, calibration) -> dict:
    plan = make_plan(data.shape, data.dtype, params, model, device, axes=axes)
    estimate = estimate_seconds(plan, device, calibration=calibration, source=data)
    table = table_seconds(plan, device)
    runs, why = network_for(plan, data)
    tracker = timing.EtaTracker(estimate)
    predicted: dict[str, float] = {}
    start = time.perf_counter()

    def watch(step) -> None:
        left = tracker.update(step.elapsed, step.fraction)
        for mark in (0.1, 0.5):
            key = f"eta_total_at_{round(mark * 100)}pct"
            if key not in predicted and step.fraction >= mark and left is not None:
                predicted[key] = round(time.perf_counter() - start + left, 2)

    result = run_to_end(denoise_iter(data, params, axes=axes), watch)
    actual = time.perf_counter() - start
    used = [c.get("network", True) for c in result.choices] or [True]
    return {
        "estimate_s": round(estimate, 2),
        "network_estimated": runs,
        "network_reason": why,
        "network_ran": any(used),
        "actual_s": round(actual, 2),
        "engine_s": round(result.seconds, 2),
        "actual_over_estimate": round(actual / estimate, 2),
        "uncalibrated_table_s": round(table, 2) if table is not None else None,
        **predicted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iterations", type=int, default=20, help="T of both presets (256x256 and the stack)")
    parser.add_argument("--large-iterations", type=int, default=2, help="T for the 1024x1024 plane")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--presets", nargs="+", default=["fast", "auto"])
    parser.add_argument("--cache", type=Path, help="calibration cache folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    device = resolve_device(args.device)
    cache = args.cache or Path(tempfile.mkdtemp(prefix="mpid-timing-"))
    os.environ[CACHE_ENV] = str(cache)  # the estimate reads its calibration from there
    params0 = preset("fast")
    precision = resolve_precision(params0.precision, device)
    model = load_model(params0.model, device)
    began = time.perf_counter()
    calibration = timing.calibrate(params0.model, device, params0.precision, loaded=model, cache=cache)
    calibrating = time.perf_counter() - began
    print(f"calibration on {calibration.key}: {calibrating:.1f} s")
    print(
        f"  step {calibration.step_overhead * 1e3:.1f} ms + {calibration.step_per_megapixel:.1f} s per megapixel; "
        f"mix {calibration.mix_per_megapixel:.1f} s/MP alone, {calibration.stack_mix_per_megapixel:.1f} s/MP "
        f"with neighbours; start-up {calibration.startup:.2f} s"
    )
    rows = []
    for name in args.cases:
        planes, side, axes = CASES[name]
        data = case_data(planes, side, axes)
        iterations = args.large_iterations if side >= 1024 else args.iterations
        for preset_name in args.presets:
            params = preset(preset_name, iterations=iterations, device=args.device)
            row = {"case": name, "preset": preset_name, "iterations": iterations}
            row.update(run_case(data, axes, params, model, device, calibration))
            rows.append(row)
            print(json.dumps(row))

    print()
    print("| case | preset (T) | network | estimate | actual | actual / estimate | ETA at 10 % / 50 % | old table |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        network = "yes" if r["network_ran"] else "no"
        if r["network_estimated"] != r["network_ran"]:
            network += f" (estimate assumed {'yes' if r['network_estimated'] else 'no'})"
        etas = " / ".join(f"{r[k]:.0f} s" if k in r else "-" for k in ("eta_total_at_10pct", "eta_total_at_50pct"))
        table = f"{r['uncalibrated_table_s']:.0f} s" if r["uncalibrated_table_s"] is not None else "-"
        print(
            f"| {r['case']} | {r['preset']} ({r['iterations']}) | {network} | {r['estimate_s']:.1f} s | "
            f"{r['actual_s']:.1f} s | {r['actual_over_estimate']:.2f} | {etas} | {table} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": platform.platform(),
            "cpu": timing.device_description(torch.device("cpu")),
            "device": str(device),
            "precision": precision,
            "torch_threads": torch.get_num_threads(),
            "calibration_seconds": round(calibrating, 2),
            "calibration": calibration.to_dict(),
            "rows": rows,
        }
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
