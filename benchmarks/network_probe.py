"""Could the auto preset tell early that the network's filling will earn nothing? Its held-out error against the mix's.

Not a test: a measurement for docs/benchmarks.md ("Where the network runs
for nothing"); the rule built from it is measured by
benchmarks/network_abandon.py.

For every plane, the engine runs the auto preset with the network forced on
(``network="always"``). Recorded: the filling's held-out score per
iteration (the running average's mean squared difference to the noisy
plane on the held-out pixels: its error plus the noise variance, since
those pixels are never shown to the network), the mix alone's estimated
error (:func:`~napari_mpid.core.auto.combine` without the filling: its
SURE risk, over all pixels) plus the noise variance, and the share of the
result that the final mix gave the network. A rule that abandons the
filling when, a quarter or half of the way, its score stays far above the
mix's would save the network's time where its share ends at zero.

Sets: ``set12`` (development: Set12 128x128 centre crops, Gaussian noise
sigma 25, seeds 2000 + i, the ``pixel-independent`` model), ``cset9`` (the
same on CSet9's RGB crops, seeds 1000 + i, as benchmarks/network_value.py),
``sample`` (the planes of the widget's synthetic sample, one by one, the
``real-noise`` model).

    python benchmarks/network_probe.py set12 cset9 sample --json benchmarks/results/network_probe.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from _common import eval_dir, run_to_end
from PIL import Image

import napari_mpid.core.engine.parts as parts
from napari_mpid.core.auto import EarlyStop, combine
from napari_mpid.core.engine import denoise_planes
from napari_mpid.core.params import preset
from napari_mpid.synthetic import fluorescence_stack


def planes(dataset: str) -> list[tuple[str, np.ndarray, np.ndarray, str, str]]:
    """(name, noisy plane, clean plane, axes, model) of the set; the sample's clean plane in counts."""
    if dataset == "sample":
        noisy, clean = fluorescence_stack()
        return [(f"sample z={z}", noisy[z], clean[z], "YX", "real-noise") for z in range(len(noisy))]
    out = []
    mode, seed = ("L", 2000) if dataset == "set12" else ("RGB", 1000)
    for i, path in enumerate(sorted(eval_dir(dataset).glob("*.png"))):
        clean = np.asarray(Image.open(path).convert(mode)).astype(np.float32) / 255.0
        o0, o1 = (clean.shape[0] - 128) // 2, (clean.shape[1] - 128) // 2
        clean = clean[o0 : o0 + 128, o1 : o1 + 128]
        gen = torch.Generator().manual_seed(seed + i)
        if clean.ndim == 3:
            noise = torch.randn(clean.shape[::-1], generator=gen).numpy().transpose(2, 1, 0)
        else:
            noise = torch.randn(clean.shape, generator=gen).numpy()
        out.append(
            (
                path.name,
                (clean + noise * 25 / 255.0).astype(np.float32),
                clean,
                "YXS" if clean.ndim == 3 else "YX",
                "pixel-independent",
            )
        )
    return out


def probe(noisy: np.ndarray, axes: str, model: str) -> list[dict]:
    """One row per part: the held-out trajectory, the mix alone's error and the network's share."""
    trajectories: list[np.ndarray] = []
    mixes: list[dict] = []
    update = EarlyStop.update

    def recording(self, validation):
        trajectories.append(np.asarray(validation, dtype=np.float64).copy())
        return update(self, validation)

    def spy(part, candidates, held, noise, **kw):
        alone = combine(part, {}, held, noise, **kw)[1]
        variance = float(np.mean(noise.variance(part)))
        mixes.append({"mix alone + variance": alone.held_out_error + variance, "variance": variance})
        return combine(part, candidates, held, noise, **kw)

    EarlyStop.update, parts.combine = recording, spy
    try:
        params = preset(
            "auto", model=model, network="always", normalization="none" if model != "real-noise" else "auto"
        )
        result = run_to_end(denoise_planes(noisy, params, axes=axes, noise_map=False))
    finally:
        EarlyStop.update, parts.combine = update, combine
    # Every update call sees the whole trajectory so far: the last one before each combine is the part's.
    rows = []
    full = [t for i, t in enumerate(trajectories) if i + 1 == len(trajectories) or len(trajectories[i + 1]) <= len(t)]
    for trajectory, mix, choice in zip(full, mixes, result.choices):
        n = len(trajectory)
        rows.append(
            {
                "iterations run": n,
                "score at 1/4": float(trajectory[max(n // 4 - 1, 0)]) / mix["mix alone + variance"],
                "score at 1/2": float(trajectory[max(n // 2 - 1, 0)]) / mix["mix alone + variance"],
                "best score": float(trajectory.min()) / mix["mix alone + variance"],
                "network share": float(choice.get("shares", {}).get("network", 0.0)),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", choices=("set12", "cset9", "sample"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    found: dict[str, list[dict]] = {}
    print("scores are the filling's held-out score over the mix alone's error + the noise variance")
    for dataset in args.sets:
        for name, noisy, _, axes, model in planes(dataset):
            for row in probe(noisy, axes, model):
                found.setdefault(dataset, []).append({"image": name, **row})
                print(
                    f"{dataset:6s} {name:24s} at 1/4 {row['score at 1/4']:.3f}  at 1/2 {row['score at 1/2']:.3f}  "
                    f"best {row['best score']:.3f}  network share {row['network share']:.2f}  "
                    f"({row['iterations run']} iterations)",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
