"""Held-out pixels reused or cross-fitted in the final mix's second stage: both replayed on the same fillings.

The network's filling is the slow part of the auto preset and does not
depend on how :func:`~napari_mpid.core.auto.combine` weighs it, so this
script runs the engine once per image with the network forced on, keeps
what it hands to ``combine`` (cached under ``bench_out/crossfit/``, so a
second call replays at once), and replays ``combine`` with the held-out
pixels reused for the weights and for the evidence that judges them
(``folds=1``, the rule before issue 20) and cross-fitted (the default
:data:`~napari_mpid.core.auto.FOLDS`). Every row gives both PSNRs against
the clean reference, the evidence t, the share of the held-out mix and
the filling's weight under each rule.

Datasets: ``cset9`` (sigma 25, 128x128 centre crops, pixel-independent
model, as benchmarks/network_value.py) and ``ladder`` (the centre 128x128
crop of capture 1 at raw/avg2/avg4/avg8, real-noise model, network forced).

Not a test; one job per core::

    python benchmarks/crossfit_replay.py cset9 --limit 3
    python benchmarks/crossfit_replay.py ladder --limit 2 --json bench_out/crossfit_ladder.json
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path

import numpy as np
import torch
from _common import REPO, psnr, run_to_end
from network_value import items

import napari_mpid.core.engine.modes as modes
import napari_mpid.core.engine.parts as parts
from napari_mpid.core import auto
from napari_mpid.core.auto import combine
from napari_mpid.core.engine import denoise_planes
from napari_mpid.core.noise import estimate_noise_channels
from napari_mpid.core.params import preset

CACHE = REPO / "bench_out" / "crossfit"


def captured(noisy: np.ndarray, params, axes: str) -> list[tuple]:
    """The engine's run on ``noisy`` with :func:`combine` intercepted: its inputs for every plane."""
    calls = []

    def spy(plane, candidates, held, noise, **kw):
        calls.append((plane.copy(), {k: (v[0].copy(), v[1]) if isinstance(v, tuple) else (v.copy(), 0.0)
                                     for k, v in candidates.items()}, held.copy(), noise,
                      {k: v.copy() for k, v in (kw.get("independent") or {}).items()}))  # fmt: skip
        return combine(plane, candidates, held, noise, **kw)

    parts.combine, modes.combine = spy, spy
    try:
        run_to_end(denoise_planes(noisy, params, axes=axes, noise_map=False))
    finally:
        parts.combine, modes.combine = combine, combine
    return calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", choices=("ladder", "cset9"))
    parser.add_argument("--levels", nargs="+", default=["raw", "avg2", "avg4", "avg8"], help="ladder levels")
    parser.add_argument("--limit", type=int, help="first N configurations / images only")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--capture", action="store_true", help="only fill and cache, no replay")
    parser.add_argument(
        "--fresh-noise",
        action="store_true",
        help="estimate the noise again with the current code (as the engine does, on the plane handed to combine) "
        "instead of the estimate cached with the filling",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = "pixel-independent" if args.dataset == "cset9" else "real-noise"
    rows = []
    for name, noisy, clean, axes in items(args.dataset, ["1"], args.levels, args.limit):
        cache = CACHE / f"{args.dataset}_{name.replace('/', '_')}.pkl"
        if cache.exists():
            calls = pickle.loads(cache.read_bytes())
        else:
            params = preset("auto", device="cpu", model=model, network="always",
                            normalization="none" if args.dataset == "cset9" else "auto")  # fmt: skip
            torch.manual_seed(0)
            start = time.perf_counter()
            calls = captured(noisy, params, axes)
            print(f"{name}: filled in {time.perf_counter() - start:.0f} s", flush=True)
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_bytes(pickle.dumps(calls))
        if args.capture:
            continue
        (plane, candidates, held, noise, independent) = calls[0]  # single planes: one call
        if args.fresh_noise:
            noise = estimate_noise_channels(plane)
        reference = clean.transpose(2, 0, 1) if clean.ndim == 3 else clean[None]
        row = {"image": name, "filling": psnr(next(iter(candidates.values()))[0], reference)}
        for label, folds in (("reused", 1), ("cross-fitted", auto.FOLDS)):
            out, how = combine(plane, candidates, held, noise, independent=independent, folds=folds)
            row[label] = psnr(out, reference)
            row[f"{label} t"] = how.evidence
            row[f"{label} used"] = how.held_out_used
            row[f"{label} filling weight"] = how.weights.get("filling", 0.0)
        rows.append(row)
        shown = (f"{v} {row[v]:6.2f} (t {row[f'{v} t']:5.1f}, filling {row[f'{v} filling weight']:.2f})"
                 for v in ("reused", "cross-fitted"))  # fmt: skip
        print(f"{name:38s} filling {row['filling']:6.2f}  " + "  ".join(shown), flush=True)
    if not rows:
        return 0
    summary = {k: float(np.mean([r[k] for r in rows])) for k in ("filling", "reused", "cross-fitted")}
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"dataset": args.dataset, "summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
