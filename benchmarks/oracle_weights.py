"""How much better weights could make the auto mix: the same candidates weighted to fit the clean image.

Not a test, and not a method (the weights see gt): a ceiling for docs/benchmarks.md. For each FMDD image
of the chosen captures, the mix as shipped (:func:`~napari_mpid.core.auto.combine`, no network) beside the
same mix whose stage-1 weights are the least-squares fit to a target instead of the risk estimate's: gt
itself, and gt fitted to the capture's brightness (a gain and an offset: FMD's raw captures differ from the
50-capture gt by up to ~20 % in brightness, which a fit to gt absorbs and no blind method can). The
variant replaces one line of :func:`~napari_mpid.core.auto.risk.plane_mix`'s source (asserted present).

    python benchmarks/oracle_weights.py --captures 1 --json benchmarks/results/oracle_weights_dev.json
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

import numpy as np
import torch
from _common import eval_dir, psnr, read_unit

import napari_mpid.core.auto.risk as risk
from napari_mpid.core.auto import combine
from napari_mpid.core.noise import estimate_noise

FITTED_LINE = "linear = design.T @ x / n - penalty"


def fitted_plane_mix(target: dict):
    """plane_mix with its weights fitted to ``target["plane"]`` (least squares, same constraints)."""
    source = inspect.getsource(risk.plane_mix)
    if FITTED_LINE not in source:
        raise SystemExit(f"plane_mix no longer has the line {FITTED_LINE!r}: update this benchmark")
    source = source.replace(FITTED_LINE, "linear = design.T @ TARGET['plane'].ravel() / n")
    namespace = dict(vars(risk), TARGET=target)
    exec(source, namespace)  # a benchmark's variant of our own function
    return namespace["plane_mix"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--captures", nargs="+", default=["1"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    root = eval_dir("fmd_test_mix")
    configs = sorted({p.name.rsplit("_", 1)[0] for p in (root / "raw").glob("*.png")})
    target: dict = {}
    shipped = risk.plane_mix
    rows = []
    for capture in args.captures:
        for config in configs:
            name = f"{config}_{capture}.png"
            noisy, clean = read_unit(root / "raw" / name), read_unit(root / "gt" / name)
            held = np.random.default_rng(0).random(noisy.shape) < 0.04
            noise = estimate_noise(noisy)
            design = np.stack([clean.ravel(), np.ones(clean.size)], axis=1)
            matched = (design @ np.linalg.lstsq(design, noisy.ravel(), rcond=None)[0]).reshape(clean.shape)
            row = {"image": name}
            mixed, _ = combine(noisy[None], {}, held, noise)
            for label, reference in (("gt", clean), ("gt at the capture's brightness", matched)):
                target["plane"] = reference
                risk.plane_mix = fitted_plane_mix(target)
                try:
                    fitted, _ = combine(noisy[None], {}, held, noise)
                finally:
                    risk.plane_mix = shipped
                row[f"risk weights vs {label}"] = psnr(mixed[0], reference)
                row[f"fitted weights vs {label}"] = psnr(fitted[0], reference)
            rows.append(row)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    summary = {k: round(float(np.mean([r[k] for r in rows])), 3) for k in rows[0] if k != "image"}
    print(json.dumps(summary, indent=1))
    if args.json:
        record = {
            "what": f"the auto mix with weights fitted to gt (a ceiling), FMDD captures {args.captures}",
            "command": "python benchmarks/oracle_weights.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "summary": summary,
            "rows": rows,
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
