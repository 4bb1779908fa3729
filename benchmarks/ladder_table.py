"""Render the noise-ladder tables of docs/benchmarks.md from ladder.py JSON files.

Usage: python benchmarks/ladder_table.py RUN.json[=LABEL] [RUN.json[=LABEL] ...]

``=LABEL`` appends " LABEL" to the preset names of that run, so that two
runs of one preset (before and after a change) can stand side by side.

Runs are merged by (level, image), so presets measured in separate runs of
ladder.py (same crops, same blur baselines) end up side by side. One table
per level: the noisy crop, the level's best fixed blur, the per-image
oracle blur over sigma 0.5-2 (the issue's definition) and over 0.5-4 (wide-field
images want more), then every preset with its seconds per crop; a mean row, and
how far the worst image falls below its own oracle blur.
"""

from __future__ import annotations

import json
import sys

import numpy as np

#: The issue's oracle chose sigma among 0.5-2.0.
ISSUE_MAX_SIGMA = 2.0


def oracle(row: dict, limit: float = float("inf")) -> float:
    return max(v for s, v in row["blur"].items() if float(s) <= limit)


def main(paths: list[str]) -> int:
    merged: dict[tuple[str, str], dict] = {}
    presets: list[str] = []
    sources = []
    for argument in paths:
        path, _, label = argument.partition("=")
        with open(path) as fh:
            run = json.load(fh)
        sources.append(f"{path}: {run['device']}, {run['date']}, version {run['version']}")
        for row in run["rows"]:
            if label:
                names = [k for k in row if k + " seconds" in row]
                for name in names:
                    for suffix in ("", " seconds", " choices"):
                        if name + suffix in row:
                            row[f"{name} {label}{suffix}"] = row.pop(name + suffix)
            key = (row["level"], row["image"])
            merged.setdefault(key, {}).update(row)
            presets += [k for k in row if k + " seconds" in row and k not in presets]
    levels = list(dict.fromkeys(level for level, _ in merged))
    for level in levels:
        rows = [r for (lv, _), r in merged.items() if lv == level]
        sigmas = list(rows[0]["blur"])
        fixed = {s: np.mean([r["blur"][s] for r in rows]) for s in sigmas}
        best = max(fixed, key=fixed.get)
        shown = [p for p in presets if all(p in r for r in rows)]
        print(f"\n**{level}** (best fixed blur: sigma {best})\n")
        print("| image | noisy | fixed blur | oracle blur (0.5-2) | oracle blur (0.5-4) | " + " | ".join(f"{p} | s" for p in shown) + " |")  # fmt: skip
        print("|---|" + "---:|" * (4 + 2 * len(shown)))
        for r in rows:
            cells = [
                f"{r['noisy']:.2f}",
                f"{r['blur'][best]:.2f}",
                f"{oracle(r, ISSUE_MAX_SIGMA):.2f}",
                f"{oracle(r):.2f}",
            ]
            cells += [f"{r[p]:.2f} | {r[p + ' seconds']:.0f}" for p in shown]
            print(f"| {r['image'].removesuffix('_1.png')} | " + " | ".join(cells) + " |")
        means = [
            np.mean([r["noisy"] for r in rows]),
            fixed[best],
            np.mean([oracle(r, ISSUE_MAX_SIGMA) for r in rows]),
            np.mean([oracle(r) for r in rows]),
        ]
        cells = [f"**{m:.2f}**" for m in means]
        cells += [
            f"**{np.mean([r[p] for r in rows]):.2f}** | {np.mean([r[p + ' seconds'] for r in rows]):.0f}" for p in shown
        ]
        print("| mean | " + " | ".join(cells) + " |")
        worst = [f"{p} {min(r[p] - oracle(r, ISSUE_MAX_SIGMA) for r in rows):+.2f}" for p in shown]
        print(f"\nWorst image against its own oracle blur (0.5-2): {', '.join(worst)} dB.")
        if all("blur gain-matched" in r for r in rows):
            for p in shown:
                if not all(p + " gain-matched" in r for r in rows):
                    continue
                below = []
                for r in rows:
                    matched = max(v for s, v in r["blur gain-matched"].items() if float(s) <= ISSUE_MAX_SIGMA)
                    if r[p] - oracle(r, ISSUE_MAX_SIGMA) < -0.3:
                        below.append(
                            f"{r['image'].removesuffix('_1.png')} {r[p] - oracle(r, ISSUE_MAX_SIGMA):+.2f} "
                            f"(gain-matched {r[p + ' gain-matched'] - matched:+.2f}, capture gain {r['capture gain']:.2f})"
                        )
                print(f"{p}, more than 0.3 dB below the oracle: {'; '.join(below) or 'none'}.")
    print("\nSources: " + "; ".join(sources))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
