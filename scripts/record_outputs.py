"""Record (or check) the outputs of a fixed set of CLI runs, to prove a refactor changes nothing.

Each job runs ``napari_mpid.cli.main`` in this process on one torch thread with
fixed seeds, on small synthetic inputs; every written image is read back and
its pixels hashed (SHA-256 of dtype, shape and bytes). Timings and dates in the
metadata differ between runs by design, so only pixels are compared.

The digests hold on one machine and one thread count only (floating-point
results differ between CPUs): record before a change, check after it, here.

Usage
-----
python scripts/record_outputs.py record  bench_out/outputs.json
python scripts/record_outputs.py check   bench_out/outputs.json
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tifffile
import torch

from napari_mpid.cli import main
from napari_mpid.synthetic import fluorescence_stack

# Short runs keep the whole record under a minute; the network still runs
# (iterations > 0) wherever a job is about the network.
FEW = ["--iterations", "12", "--seed", "3", "-q"]


def _inputs(folder: Path) -> dict[str, Path]:
    stack, _ = fluorescence_stack(planes=5, size=64, photons=20.0, seed=1)
    paths = {
        "plane": folder / "plane.tif",
        "stack": folder / "stack.tif",
        "big": folder / "big.tif",
        "rgb": folder / "rgb.tif",
    }
    tifffile.imwrite(paths["plane"], stack[2])
    tifffile.imwrite(paths["stack"], stack, metadata={"axes": "ZYX"})
    big, _ = fluorescence_stack(planes=1, size=160, photons=20.0, seed=2)
    tifffile.imwrite(paths["big"], big[0])
    rgb = np.stack([stack[1], stack[2], stack[3]], axis=-1)
    tifffile.imwrite(paths["rgb"], rgb, photometric="rgb")
    batch = folder / "batch"
    batch.mkdir()
    for name, seed in (("a", 4), ("b", 5)):
        planes, _ = fluorescence_stack(planes=3, size=48, photons=20.0, seed=seed)
        tifffile.imwrite(batch / f"{name}.tif", planes, metadata={"axes": "ZYX"})
    paths["batch"] = batch
    return paths


@contextlib.contextmanager
def _interrupt_after_first_plane() -> Iterator[None]:
    """Stop a run (as Ctrl-C would) right after its journal records the first finished plane."""
    try:
        from napari_mpid.batch import journal
    except ImportError:  # the layout before the reorganisation
        import napari_mpid.journal as journal  # type: ignore[no-redef]
    real = journal.Journal.mark

    def mark_then_stop(self, numbers):
        real(self, numbers)
        raise KeyboardInterrupt

    journal.Journal.mark = mark_then_stop
    try:
        yield
    finally:
        journal.Journal.mark = real


def _jobs(inp: dict[str, Path], out: Path) -> dict[str, Callable[[], None]]:
    def run(*argv: str, expect: int = 0) -> None:
        code = main(["denoise", *argv])
        if code != expect:
            raise SystemExit(f"napari-mpid denoise {' '.join(argv)} returned {code}, expected {expect}")

    def resume() -> None:
        target = out / "resume"
        with _interrupt_after_first_plane():
            run(str(inp["batch"]), "-o", str(target), "--preset", "fast", *FEW, expect=130)
        run(str(inp["batch"]), "-o", str(target), "--resume", "--preset", "fast", *FEW)

    return {
        "fast": lambda: run(str(inp["plane"]), "-o", str(out / "fast.tif"), "--preset", "fast", *FEW),
        "quality": lambda: run(str(inp["plane"]), "-o", str(out / "quality.tif"), "--preset", "quality", *FEW),
        "auto": lambda: run(
            str(inp["stack"]), "-o", str(out / "auto.tif"), "--noise-map", str(out / "auto_noise.tif"), "-q"
        ),
        "auto_network": lambda: run(
            str(inp["plane"]), "-o", str(out / "auto_network.tif"), "--network", "always", *FEW
        ),
        "context": lambda: run(
            str(inp["stack"]), "-o", str(out / "context.tif"), "--preset", "fast", "--context", "1", *FEW
        ),
        "static": lambda: run(str(inp["stack"]), "-o", str(out / "static.tif"), "--static-scene", *FEW),
        "tiled": lambda: run(
            str(inp["big"]),
            "-o",
            str(out / "tiled.tif"),
            "--preset",
            "fast",
            "--tile-size",
            "64",
            "--tile-overlap",
            "16",
            *FEW,
        ),
        "rgb": lambda: run(str(inp["rgb"]), "-o", str(out / "rgb.tif"), "--preset", "fast", "--axes", "YXS", *FEW),
        "auto_context_network": lambda: run(
            str(inp["stack"]), "-o", str(out / "auto_context_network.tif"), "--network", "always", *FEW
        ),
        "auto_tiled_network": lambda: run(
            str(inp["big"]),
            "-o",
            str(out / "auto_tiled_network.tif"),
            "--network",
            "always",
            "--tile-size",
            "64",
            "--tile-overlap",
            "16",
            *FEW,
        ),
        "batch_resume": resume,
    }


def _digest(path: Path) -> str:
    data = tifffile.imread(path)
    h = hashlib.sha256(f"{data.dtype.str}{data.shape}".encode())
    h.update(np.ascontiguousarray(data).tobytes())
    return h.hexdigest()


def record_all(only: list[str] | None = None) -> dict[str, str]:
    torch.set_num_threads(1)
    digests: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        (root / "out").mkdir()
        inputs = _inputs(root / "in")
        for name, job in _jobs(inputs, root / "out").items():
            if only and name not in only:
                continue
            print(f"{name} ...", flush=True)
            job()
        for path in sorted((root / "out").rglob("*.tif")):
            digests[str(path.relative_to(root / "out"))] = _digest(path)
    return digests


def main_(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["record", "check"])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--only", nargs="*", help="run only these jobs (check compares their files alone)")
    args = parser.parse_args(argv)
    digests = record_all(args.only)
    if args.mode == "record":
        args.manifest.parent.mkdir(parents=True, exist_ok=True)
        args.manifest.write_text(json.dumps(digests, indent=1) + "\n")
        print(f"{len(digests)} outputs recorded in {args.manifest}")
        return 0
    expected = json.loads(args.manifest.read_text())
    if args.only:
        expected = {k: v for k, v in expected.items() if k in digests}
    differ = sorted(k for k in expected.keys() | digests.keys() if expected.get(k) != digests.get(k))
    for name in differ:
        print(f"DIFFERS: {name}")
    print(f"{len(digests) - len(differ)} of {len(expected)} outputs identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main_())
