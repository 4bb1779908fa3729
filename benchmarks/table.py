"""Render Markdown tables from eval_quality.py JSON files (for docs/benchmarks.md).

Usage: python benchmarks/table.py NAME=FILE.json [NAME=FILE.json ...]

One column per file (its "mpi" score), plus the baselines of the first file
that has them, one row per image and a mean row; the device and date of each
file are listed under the table.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    runs = []
    for arg in argv:
        name, _, path = arg.partition("=")
        with open(path) as fh:
            runs.append((name, json.load(fh)))
    columns: list[tuple[str, dict, str]] = [("noisy", runs[0][1], "noisy")]
    for name, run in runs:
        if "mpi" in run["rows"][0]:
            columns.append((name, run, "mpi"))
    for _name, run in runs:
        keys = [k for k, v in run["rows"][0].items() if isinstance(v, list) and k not in ("noisy", "mpi")]
        if keys:
            columns += [(k.replace("_", " "), run, k) for k in keys]
            break
    print("| image | " + " | ".join(c[0] for c in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for i, row in enumerate(runs[0][1]["rows"]):
        cells = [f"{c[1]['rows'][i][c[2]][0]:.2f}/{c[1]['rows'][i][c[2]][1]:.3f}" for c in columns]
        print(f"| {row['image']} | " + " | ".join(cells) + " |")
    means = [f"**{c[1]['mean'][c[2]][0]:.2f}/{c[1]['mean'][c[2]][1]:.3f}**" for c in columns]
    print("| **mean** | " + " | ".join(means) + " |")
    print()
    for name, run in runs:
        timing = ""
        if "seconds" in run["mean"]:
            timing = f", {run['mean']['seconds']:.1f} s per image ({run['mean']['ms_per_iteration']:.0f} ms/iteration)"
        p = run["params"]
        if "mpi" not in run["rows"][0]:
            print(f"- {name}: baselines only, {run['device']}, {run['date'][:10]}")
            continue
        print(
            f"- {name}: model `{run['model'].split('/')[-1]}`, T={p['iterations']}, beta={p['beta']}, "
            f"mask {p['mask_ratio']}, {p.get('precision', 'float32')}, {run['device']}, {run['date'][:10]}{timing}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
