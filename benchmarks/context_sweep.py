"""How context filling's quality evolves with the fit's length (issue 10 design sweep).

Fits the stack's network once per setting and predicts every plane at a few
checkpoints of the fit. Not a test; run by hand, one job at a time::

    python benchmarks/context_sweep.py pollen --context 1 --checkpoints 100 200 400
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from stacks import load, scores, to_unit

from napari_mpid.api import load_model
from napari_mpid.core.fill.context import ContextFiller
from napari_mpid.core.fill.settings import FillSettings
from napari_mpid.core.run.devices import resolve_precision
from napari_mpid.core.run.normalization import fit_scale
from napari_mpid.core.run.stack import PlaneCache


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("--model", default="real-noise")
    parser.add_argument("--context", type=int, default=1)
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--mask-ratio", type=float, default=0.85)
    parser.add_argument("--passes", type=int, default=8)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    precision = resolve_precision(args.precision, device)
    model = load_model(args.model, "cpu")
    results: dict[int, list[float]] = {c: [] for c in args.checkpoints}
    start = time.perf_counter()
    for item in load(args.dataset, args.limit):
        noisy = item["noisy"]
        scale = fit_scale(noisy, "auto")
        scaled = scale.forward(noisy)
        cf = ContextFiller(
            model.network,
            model.state,
            args.context,
            FillSettings(
                mask_ratio=args.mask_ratio,
                learning_rate=args.lr,
                precision=precision,
                channels_last=precision == "bfloat16",
            ),
            crop_size=args.crop,
            passes=args.passes,
        )
        planes = PlaneCache(lambda k, s=scaled: torch.from_numpy(s[k][None, None]), len(noisy), device, 2**31)
        gen = torch.Generator().manual_seed(0)
        for t in cf.fit(planes, max(args.checkpoints), gen):
            if t in results:
                pred = np.stack(
                    [cf.predict(planes, k, torch.Generator().manual_seed(k))[0, 0].numpy() for k in range(len(noisy))]
                )
                value = scores(item, to_unit(item, scale.inverse(pred)))
                results[t].extend(value)
                print(
                    f"{item['name']:24s} t={t}: {np.mean(value):.2f} ({time.perf_counter() - start:.0f} s)", flush=True
                )
    means = {t: float(np.mean(v)) for t, v in results.items()}
    print(json.dumps(means))
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "means": means}, indent=1))


if __name__ == "__main__":
    main()
