"""The ``napari-mpid`` command: a thin layer over :mod:`napari_mpid.api`.

Sub-commands: ``denoise`` (files), ``pretrain`` (masked pre-training),
``demo`` (denoise the built-in synthetic sample and report PSNR),
``noise-profile`` (a camera's noise from repeated exposures, for
``denoise --noise-profile``) and ``models`` (list the bundled models).
Errors print one line and exit with a non-zero status; no output appears
under its final name unless its run succeeded.
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
    "static_scene": "--static-scene",
    "adaptive": "--adaptive",
    "network": "--network",
    "noise_profile": "--noise-profile",
}


def _add_fill_options(parser: argparse.ArgumentParser) -> None:
    from .core.params import DEFAULT_PRESET, PRESETS, FillParams, field_kind, preset_descriptions

    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=DEFAULT_PRESET,
        help="; ".join(
            f"{name}: {text}" + (" (default)" if name == DEFAULT_PRESET else "")
            for name, text in preset_descriptions().items()
        ).replace("%", "%%"),
    )
    for f in dataclasses.fields(FillParams):
        kind = {"int": int, "float": float}.get(field_kind(f), str)
        help_text = f.metadata["help"]
        if f.name == "model":
            help_text += " Bundled: real-noise (default), pixel-independent."
        if field_kind(f) == "bool":
            parser.add_argument(
                _OPTION_NAMES[f.name], dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
            continue
        parser.add_argument(
            _OPTION_NAMES[f.name], dest=f.name, type=kind, default=None, metavar=f.name.upper(), help=help_text
        )


def _params_from(args: argparse.Namespace):
    from .core.params import FillParams, preset

    changes = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(FillParams) if getattr(args, f.name) is not None
    }
    return preset(args.preset, **changes)


def _cmd_denoise(args: argparse.Namespace) -> int:
    from . import api
    from .batch.cluster import connect, disconnect, run_on_cluster
    from .batch.jobs import RunOptions, check_outputs, plan_jobs
    from .batch.report import print_summary
    from .batch.run import run_jobs

    params = _params_from(args)
    if params.noise_profile is not None:
        api.load_profile(params.noise_profile)  # a missing or broken profile stops here, before any output
    if args.workers is not None and args.scheduler:
        raise ValueError("use either --workers or --scheduler, not both")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    jobs, batch = plan_jobs(args.inputs, args.output, args.noise_map, args.format)
    check_outputs(jobs, batch)  # every output path, before any compute
    options = RunOptions(
        params=params,
        axes=args.axes,
        dtype=args.dtype,
        resume=args.resume,
        overwrite=args.overwrite,
        keep_going=args.keep_going,
        quiet=args.quiet,
    )
    client = None
    if args.workers is not None or args.scheduler:
        client = connect(args.scheduler, args.workers)
    try:
        if client is None:
            outcomes = run_jobs(jobs, options, batch=batch)
        else:
            outcomes = run_on_cluster(jobs, options, client, batch=batch)
    except KeyboardInterrupt:
        print("napari-mpid: interrupted; run the same command with --resume to continue", file=sys.stderr)
        return 130
    finally:
        if client is not None:
            disconnect(client)
    if batch:
        print_summary(outcomes)
    else:
        [outcome] = outcomes
        if outcome.status == "skipped":
            print(f"skipped: {outcome.job.output} exists (--overwrite replaces it)")
        elif outcome.status == "done" and not args.quiet:
            resumed = f", {outcome.resumed} planes from the journal" if outcome.resumed else ""
            print(
                f"wrote {outcome.job.output} ({outcome.seconds:.1f} s on {outcome.device}, "
                f"model {outcome.model}{resumed})"
            )
    return 2 if any(o.status == "failed" for o in outcomes) else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import api
    from .files.write import write_tiff
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


def _cmd_noise_profile(args: argparse.Namespace) -> int:
    from . import api
    from .files.read import read_image

    frames = []
    for path in args.inputs:
        image = read_image(path)
        try:
            frames.extend(api.exposure_planes(image.data, args.axes or image.axes))
        except api.InputError as exc:
            raise api.InputError(f"{path}: {exc}") from None
    profile = api.measure_noise_profile(frames)
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists (--overwrite replaces it)")
    profile.save(out)
    print(f"wrote {out}: {profile.describe()}")
    for caution in profile.cautions():
        print(f"warning: {caution}", file=sys.stderr)
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from . import api

    for name, entry in api.list_models().items():
        print(f"{name}\t{entry['file']}\tsha256={entry['sha256']}\t{entry.get('summary', '')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="napari-mpid", description="Zero-shot denoising of microscopy images (MPI).")
    parser.add_argument("--version", action="version", version=f"napari-mpid {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    den = sub.add_parser(
        "denoise",
        help="denoise image files (one file, or many into a folder)",
        description="Denoise one image (-o FILE) or many (files, folders, globs; -o FOLDER). Planes are read and "
        "written one at a time; outputs appear under their final names only when complete. An input whose "
        "outputs exist is skipped (--overwrite replaces them); an interrupted run continues with --resume.",
    )
    den.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="TIFF stacks, OME-Zarr (.zarr), PNG/JPEG, formats bioio reads; folders (their images) or globs",
    )
    den.add_argument(
        "-o",
        "--output",
        required=True,
        help="output file (.tif, .tiff or .ome.zarr) for one input; else a folder, where each input "
        "gives <name>.tif (or .ome.zarr, see --format)",
    )
    den.add_argument(
        "--noise-map",
        metavar="PATH",
        help="also write the estimated noise map (input - denoised): a file for one input, else a folder "
        "(<name>_noise_map.tif)",
    )
    den.add_argument(
        "--format",
        choices=("tif", "ome.zarr"),
        default="tif",
        help="output format when -o is a folder (default: tif)",
    )
    den.add_argument("--axes", help="axes of the input, e.g. ZYX, TCYX, YXS (default: from the file)")
    den.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from its journal (<output>.journal): finished planes are kept",
    )
    den.add_argument("--overwrite", action="store_true", help="replace existing outputs and discard journals")
    den.add_argument("--keep-going", action="store_true", help="go on with the other inputs after a failure")
    den.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="spread planes over N local Dask worker processes (needs napari-mpid[cluster])",
    )
    den.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="spread planes over the workers of this dask.distributed scheduler, e.g. tcp://host:8786",
    )
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

    prof = sub.add_parser(
        "noise-profile",
        help="measure a camera's noise from repeated exposures (for --noise-profile)",
        description="Measure the noise-level line and autocorrelation of a camera at one setting from two or "
        "more exposures of one unchanging field (a time series, or several files), taken with the settings of "
        "the data to denoise. Write it as JSON for `denoise --noise-profile` (auto preset).",
    )
    prof.add_argument("inputs", nargs="+", metavar="INPUT", help="a stack of exposures, or one file per exposure")
    prof.add_argument("-o", "--output", required=True, help="the profile to write (.json)")
    prof.add_argument("--axes", help="axes of the inputs, e.g. TYX (default: from the file)")
    prof.add_argument("--overwrite", action="store_true", help="replace an existing profile")
    prof.set_defaults(func=_cmd_noise_profile)

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
