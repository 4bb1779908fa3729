"""Render the stack tables of docs/benchmarks.md from stacks.py JSON files.

Usage: python benchmarks/stacks_table.py RUN.json[=NOTE] [RUN.json[=NOTE] ...]

``=NOTE`` is appended to that run's row name (e.g. the session that measured it).

All runs must be of one dataset. One row per method (every run's label),
then the best baseline of each kind from the first run (same inputs in
every run): PSNR as the protocol scores it and with a per-frame gain
matched to the reference, the time for all stacks, and for context filling
how much weight the fitted networks give the neighbour planes.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def main(paths: list[str]) -> int:
    runs, notes = [], []
    for argument in paths:
        path, _, note = argument.partition("=")
        with open(path) as fh:
            runs.append(json.load(fh))
        notes.append(f" ({note})" if note else "")
    paths = [argument.partition("=")[0] for argument in paths]
    datasets = {run["dataset"] for run in runs}
    if len(datasets) != 1:
        raise SystemExit(f"runs of several datasets: {sorted(datasets)}")
    print("| method | PSNR | gain-matched | time (all stacks) | neighbour weight ratio |")
    print("|---|---:|---:|---:|---:|")
    for run, note in zip(runs, notes):
        label = run["label"]
        seconds = sum(item["seconds"] for item in run["items"])
        ratios = [item["meta"].get("neighbour_weight_ratio") for item in run["items"]]
        ratios = [r for r in ratios if r is not None]
        ratio = f"{np.mean(ratios):.2f}" if ratios else "-"
        print(
            f"| {label}{note} | **{run['means'][label]:.2f}** | {run['means'][label + ' (gain-matched)']:.2f} "
            f"| {seconds:.0f} s | {ratio} |"
        )
    best = runs[0]["best_baselines"]
    for kind in ("blur2d", "mean+blur", "blur3d", "regmean+blur"):
        if kind not in best:  # registered means: FMD series only
            continue
        name, psnr = best[kind]["name"], best[kind]["psnr"]
        matched = best[kind + " (gain-matched)"]
        print(f"| best {kind} ({name.split('_')[1]}) | {psnr:.2f} | {matched['psnr']:.2f} ({matched['name'].split('_')[1].split()[0]}) | - | - |")  # fmt: skip
    print(f"| noisy | {runs[0]['means']['noisy']:.2f} | | | |")
    print()
    print(
        "Sources: "
        + "; ".join(f"{p} ({r['device']}, {r['date']}, version {r['version']})" for p, r in zip(paths, runs))
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
