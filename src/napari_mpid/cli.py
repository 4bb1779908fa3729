"""The ``napari-mpid`` command: a thin layer over :mod:`napari_mpid.api`.

Sub-commands: ``denoise`` (files), ``pretrain`` (masked pre-training),
``demo`` (denoise the built-in synthetic sample and report PSNR) and
``models`` (list the bundled models). Errors print one line and exit with a
non-zero status; no output file is written unless the whole run succeeded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["main"]

# CLI option name -> FillParams field (the paper's short names where they exist).
_OPTION_NAMES = {
    "iterations": "--iterations",
    "beta": "--beta",
    "mask_ratio": "--mask-ratio",
    "learning_rate": "--lr",
    "pd_factor": "--pd",
    "model": "--model",
    "device": "--device",
    "seed": "--seed",
    "tile_size": "--tile-size",
    "tile_overlap": "--tile-overlap",
    "normalization": "--normalization",
    "precision": "--precision",
    "stack_planes": "--stack-planes",
    "cuda_graphs": "--cuda-graphs",
    "context": "--context",
    "context_axis": "--context-axis",
    "memory_limit": "--memory-limit",
}


def _add_fill_options(parser: argparse.ArgumentParser) -> None:
    from .core.params import PRESETS, FillParams, field_kind

    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="fast",
        help="fast: T=200, beta=0.90; quality: T=1000, beta=0.99; cpu: T=150, beta=0.90, lr 3e-3 "
        "(fast-preset quality in 25%% fewer iterations, for machines without a GPU) (default: fast)",
    )
    for f in dataclasses.fields(FillParams):
        kind = {"int": int, "float": float}.get(field_kind(f), str)
        help_text = f.metadata["help"]
        if f.name == "model":
            help_text += " Bundled: real-noise (default), pixel-independent."
        parser.add_argument(
            _OPTION_NAMES[f.name], dest=f.name, type=kind, default=None, metavar=f.name.upper(), help=help_text
        )


def _params_from(args: argparse.Namespace):
    from .core.params import FillParams, preset

    changes = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(FillParams) if getattr(args, f.name) is not None
    }
    return preset(args.preset, **changes)


def _output_array(result_array: np.ndarray, source_dtype: np.dtype, mode: str) -> np.ndarray:
    if mode == "float32" or source_dtype.kind == "f":
        return result_array.astype(np.float32)
    info = np.iinfo(source_dtype)
    return np.clip(np.rint(result_array), info.min, info.max).astype(source_dtype)


def _cmd_denoise(args: argparse.Namespace) -> int:
    from . import api
    from .io import read_image, write_tiff

    params = _params_from(args)
    output = Path(args.output)
    if output.suffix.lower() not in (".tif", ".tiff"):
        raise ValueError(f"output {output.name!r} must end in .tif or .tiff")
    if not output.parent.exists():
        raise ValueError(f"output folder {output.parent} does not exist")
    image = read_image(args.input)
    axes = args.axes.upper() if args.axes else (image.axes if "Q" not in image.axes else None)
    result = api.denoise(image.data, params, axes=axes, progress=not args.quiet)
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    meta = {k: v for k, v in result.metadata().items() if not isinstance(v, (list, dict))}
    write_tiff(
        output, _output_array(result.denoised, image.data.dtype, args.dtype), result.axes, image.scale, image.unit, meta
    )
    if args.noise_map:
        write_tiff(args.noise_map, result.noise_map.astype(np.float32), result.axes, image.scale, image.unit, meta)
    if not args.quiet:
        print(f"wrote {output} ({result.seconds:.1f} s on {result.device}, model {result.model})")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import api
    from .io import write_tiff
    from .synthetic import fluorescence_stack

    noisy, clean = fluorescence_stack(planes=args.planes, size=args.size, seed=0)
    params = _params_from(args)
    result = api.denoise(noisy, params, axes="ZYX", progress=not args.quiet)
    span = float(clean.max() - clean.min())

    def psnr(x: np.ndarray) -> float:
        return float(10 * np.log10(span**2 / np.mean((x.astype(np.float64) - clean) ** 2)))

    report = {
        "psnr_noisy": round(psnr(noisy), 2),
        "psnr_denoised": round(psnr(result.denoised), 2),
        "seconds": round(result.seconds, 1),
        "device": result.device,
        "model": result.model,
        "iterations": params.iterations,
    }
    print(json.dumps(report))
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        write_tiff(out / "sample_noisy.tif", noisy, "ZYX")
        write_tiff(out / "sample_denoised.tif", result.denoised, "ZYX")
        write_tiff(out / "sample_noise_map.tif", result.noise_map, "ZYX")
        print(f"wrote {out}/sample_noisy.tif, sample_denoised.tif, sample_noise_map.tif")
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from . import api

    config = {
        "channels": args.channels,
        "multi_channel_mask": args.mask == "multi",
        "mask_ratio_min": args.mask_ratio_min,
        "mask_ratio_max": args.mask_ratio_max,
        "crop_size": args.crop_size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "learning_rate": args.lr,
        "validation_every": args.validate_every,
        "checkpoint_every": args.checkpoint_every,
        "seed": args.seed,
        "gray": args.gray,
    }
    resume = None
    if args.resume:
        resume = Path(args.output)
        if not resume.exists():
            raise FileNotFoundError(f"--resume: {resume} does not exist yet")
    weights = api.pretrain(
        args.folders,
        args.output,
        device=args.device,
        resume=resume,
        time_limit=args.time_limit,
        until=args.until,
        progress=not args.quiet,
        **config,
    )
    print(f"wrote {args.output} (resumable) and {weights}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .core.checkpoints import _registry

    for name, entry in _registry().items():
        print(f"{name}\t{entry['file']}\tsha256={entry['sha256']}\t{entry.get('summary', '')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="napari-mpid", description="Zero-shot denoising of microscopy images (MPI).")
    parser.add_argument("--version", action="version", version=f"napari-mpid {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    den = sub.add_parser("denoise", help="denoise a TIFF (or other image) file")
    den.add_argument("input", help="input image: TIFF stack, PNG/JPEG, or any format bioio reads")
    den.add_argument("-o", "--output", required=True, help="denoised TIFF to write")
    den.add_argument("--noise-map", help="also write the estimated noise map (input - denoised) here")
    den.add_argument("--axes", help="axes of the input, e.g. ZYX, TCYX, YXS (default: from the file)")
    den.add_argument(
        "--dtype",
        choices=("float32", "input"),
        default="float32",
        help="output data type: float32 (default) or the input's (rounded and clipped)",
    )
    den.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_fill_options(den)
    den.set_defaults(func=_cmd_denoise)

    demo = sub.add_parser("demo", help="denoise the built-in synthetic fluorescence stack and report PSNR")
    demo.add_argument("-o", "--output", help="folder for the sample, denoised stack and noise map")
    demo.add_argument("--planes", type=int, default=3)
    demo.add_argument("--size", type=int, default=128)
    demo.add_argument("-q", "--quiet", action="store_true")
    _add_fill_options(demo)
    demo.set_defaults(func=_cmd_demo)

    pre = sub.add_parser("pretrain", help="masked pre-training on folders of clean images")
    pre.add_argument("folders", nargs="+", help="folders of png/tif/jpg images (searched recursively)")
    pre.add_argument("-o", "--output", required=True, help="checkpoint to write (resumable)")
    pre.add_argument("--resume", action="store_true", help="continue the run stored in --output")
    pre.add_argument("--channels", type=int, choices=(1, 3), default=1, help="1 = native gray model, 3 = RGB")
    pre.add_argument(
        "--gray",
        action="store_true",
        help="convert colour images to gray first (a 3-channel model that sees gray replicated)",
    )
    pre.add_argument(
        "--mask",
        choices=("single", "multi"),
        default="single",
        help="single: one mask shared by all channels; multi: one per channel",
    )
    pre.add_argument("--mask-ratio-min", type=float, default=0.80)
    pre.add_argument("--mask-ratio-max", type=float, default=0.95)
    pre.add_argument("--crop-size", type=int, default=64)
    pre.add_argument("--batch-size", type=int, default=16)
    pre.add_argument("--steps", type=int, default=1000, help="total optimiser steps (cosine schedule length)")
    pre.add_argument("--lr", type=float, default=2e-3)
    pre.add_argument("--validate-every", type=int, default=250)
    pre.add_argument("--checkpoint-every", type=int, default=250)
    pre.add_argument("--time-limit", type=float, help="stop after this many seconds (resume later)")
    pre.add_argument("--until", type=int, help="stop after this step (resume later; the schedule still spans --steps)")
    pre.add_argument("--device", default="auto")
    pre.add_argument("--seed", type=int, default=0)
    pre.add_argument("-q", "--quiet", action="store_true")
    pre.set_defaults(func=_cmd_pretrain)

    mod = sub.add_parser("models", help="list the bundled models")
    mod.set_defaults(func=_cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("napari-mpid: interrupted; nothing was written", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError, KeyError) as exc:
        # InputError, ParameterError, ImageReadError are ValueErrors;
        # DeviceError and CheckpointError are RuntimeErrors.
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"napari-mpid: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
