"""What abandoning a filling that earns nothing saves, and what it costs: PSNR and seconds side by side.

Not a test: the measurement behind ``ABANDON_AT`` (napari_mpid.core.engine.parts)
for docs/benchmarks.md ("Abandoning a filling that earns nothing").

Every image runs the auto preset with the network on (``network="auto"``
where the noise decision already runs it: pixel-independent Gaussian noise
here) once per value of ``--at``: 0 turns the check off (the filling runs
until it stops), 0.25 and 0.5 check after that share of the iterations.
Sets as in benchmarks/network_probe.py: ``set12`` (development: Set12
128x128 centre crops, Gaussian noise sigma 25, seeds 2000 + i), ``cset9``
(held out: CSet9's RGB crops, seeds 1000 + i), ``sample`` (the widget's
synthetic sample, plane by plane, ``real-noise`` model; PSNR against the
clean counts, peak = brightest clean count) and ``stack`` (the same sample as
the widget runs it: one z-stack, context filling with its default
neighbours; the stack's mean PSNR). PSNR as benchmarks/_common.psnr for the
two image sets.

    python benchmarks/network_abandon.py set12 cset9 sample stack --at 0 0.25 0.5 \\
        --json benchmarks/results/network_abandon.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _common import psnr, run_to_end
from network_probe import planes

import napari_mpid.core.engine.modes as modes
import napari_mpid.core.engine.parts as parts
from napari_mpid.core.engine import denoise_planes
from napari_mpid.core.params import preset
from napari_mpid.synthetic import fluorescence_stack


def score(dataset: str, denoised: np.ndarray, clean: np.ndarray) -> float:
    if dataset in ("sample", "stack"):
        return float(10 * np.log10(float(clean.max()) ** 2 / np.mean((denoised - clean) ** 2)))
    return psnr(denoised, clean)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", choices=("set12", "cset9", "sample", "stack"))
    parser.add_argument("--at", type=float, nargs="+", default=[0.0, 0.25])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iterations", type=int, help="the most iterations T (default: the auto preset's)")
    parser.add_argument("--evidence", type=float, help="ABANDON_EVIDENCE (default: the shipped value)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    kept = parts.ABANDON_AT, parts.ABANDON_EVIDENCE
    if args.evidence is not None:
        parts.ABANDON_EVIDENCE = modes.ABANDON_EVIDENCE = args.evidence
    found: dict[str, list[dict]] = {}
    try:
        for dataset in args.sets:
            if dataset == "stack":
                noisy, clean = fluorescence_stack()
                todo = [("sample stack", noisy, clean, "ZYX", "real-noise")]
            else:
                todo = planes(dataset)
            for name, noisy, clean, axes, model in todo:
                row: dict = {"image": name}
                for at in args.at:
                    parts.ABANDON_AT = modes.ABANDON_AT = at  # plane filling, context filling
                    normalization = "auto" if model == "real-noise" else "none"
                    params = preset("auto", model=model, normalization=normalization, device=args.device)
                    if args.iterations is not None:
                        params = params.replace(iterations=args.iterations)
                    start = time.perf_counter()
                    result = run_to_end(denoise_planes(noisy, params, axes=axes, noise_map=False))
                    seconds = time.perf_counter() - start
                    denoised = np.asarray(result.denoised, np.float64)
                    if dataset == "stack":
                        value = float(np.mean([score(dataset, d, c) for d, c in zip(denoised, clean)]))
                    else:
                        value = score(dataset, denoised, clean)
                    choice = result.choices[len(result.choices) // 2]
                    row[str(at)] = {
                        "psnr": round(value, 3),
                        "seconds": round(seconds, 1),
                        "network": bool(choice["network"]),
                        "abandoned_at": choice.get("abandoned_at"),
                        "network share": round(result.produced_by()["network"] / 100, 3),
                    }
                found.setdefault(dataset, []).append(row)
                shown = "  ".join(
                    f"at {at}: {row[str(at)]['psnr']:.2f} dB {row[str(at)]['seconds']:5.1f} s"
                    f"{' abandoned' if row[str(at)]['abandoned_at'] else ''}"
                    for at in args.at
                )
                print(f"{dataset:6s} {name:16s} {shown}", flush=True)
            rows = found[dataset]
            for at in args.at:
                cells = [r[str(at)] for r in rows]
                print(
                    f"{dataset:6s} mean at {at}: {np.mean([c['psnr'] for c in cells]):.3f} dB, "
                    f"{np.sum([c['seconds'] for c in cells]):.1f} s in all, "
                    f"abandoned on {sum(1 for c in cells if c['abandoned_at'])} of {len(cells)}",
                    flush=True,
                )
    finally:
        parts.ABANDON_AT = modes.ABANDON_AT = kept[0]
        parts.ABANDON_EVIDENCE = modes.ABANDON_EVIDENCE = kept[1]
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "at": args.at,
                    "iterations": params.iterations,
                    "evidence": kept[1] if args.evidence is None else args.evidence,
                    "threads": args.threads,
                    "device": args.device,
                    "sets": found,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
