"""What the benchmark scripts share: where the evaluation data are, how they are read and scored.

The data are read at run time from ``../shared/data/eval`` beside the
repository (never copied into it), or from ``$MPID_EVAL_DIR`` where that is
set: the copy that ``scripts/device_prepare.sh`` makes for a GPU machine,
where ``../shared`` does not travel.

Scores follow one protocol everywhere: PSNR in dB of the estimate, clipped
to [0, 1], against a clean reference in [0, 1], with data range 1 (the same
figure as scikit-image's ``peak_signal_noise_ratio(clean, clip(estimate),
data_range=1)``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from napari_mpid.core.steps import run_to_end

__all__ = [
    "ANCHOR_CHECKPOINTS",
    "FMD_CROP",
    "ORACLE_SIGMAS",
    "REPO",
    "SHARED",
    "eval_dir",
    "fmd_first_captures",
    "gt_residual",
    "kernel_slope",
    "mix_alone_psnr",
    "psnr",
    "psnr_gain_matched",
    "read_gray",
    "read_unit",
    "residual_autocorrelation",
    "run_to_end",
    "scaled_noise",
]

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
#: The MPI authors' checkpoints: a yardstick for the benchmarks, never shipped or copied.
ANCHOR_CHECKPOINTS = SHARED / "anchors" / "mpi_official" / "ckpts"
#: The 128x128 centre crop at (192, 192) of a 512x512 FMD capture (the noise ladder's crops).
FMD_CROP = (slice(192, 320), slice(192, 320))
#: Blur widths among which the per-image "oracle blur" picks the best with the clean image.
ORACLE_SIGMAS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


def eval_dir(*parts: str) -> Path:
    """A folder or file of the evaluation data, checked to exist.

    Parameters
    ----------
    *parts : str
        Path below the evaluation root, e.g. ``"fmd_test_mix"`` or
        ``"zstacks", "pollen_noisy.tif"``.

    Returns
    -------
    Path
        ``$MPID_EVAL_DIR/<parts>`` when that variable is set, else
        ``../shared/data/eval/<parts>`` relative to the repository.

    Raises
    ------
    FileNotFoundError
        If that path does not exist, with a message saying where the data
        were looked for and how to point to them.
    """
    override = os.environ.get("MPID_EVAL_DIR")
    root = Path(override) if override else SHARED / "data" / "eval"
    path = root.joinpath(*parts)
    if not path.exists():
        where = f"MPID_EVAL_DIR={override}" if override else f"../shared/data/eval beside the repository ({root})"
        raise FileNotFoundError(
            f"benchmark data not found: {path} does not exist (looked in {where}); the benchmarks read "
            "../shared/data/eval at run time: run them from a checkout with ../shared beside it, or set "
            "MPID_EVAL_DIR to a copy of that folder (scripts/device_prepare.sh makes one)"
        )
    return path


def fmd_first_captures() -> list[str]:
    """File names of the first capture of FMD test_mix's 12 configurations (``<config>_1.png``), sorted."""
    return sorted(p.name for p in (eval_dir("fmd_test_mix") / "raw").glob("*_1.png"))


def read_gray(path: Path) -> np.ndarray:
    """An image file as an ``(H, W)`` uint8 gray array (colour is converted to luma)."""
    return np.asarray(Image.open(path).convert("L"))


def read_unit(path: Path) -> np.ndarray:
    """An 8-bit image file as an ``(H, W)`` float64 gray array in [0, 1] (values / 255)."""
    return read_gray(path).astype(np.float64) / 255.0


def psnr(estimate: np.ndarray, clean: np.ndarray) -> float:
    """PSNR (dB, data range 1) of ``estimate`` clipped to [0, 1] against ``clean`` in [0, 1]."""
    return float(10 * np.log10(1.0 / np.mean((np.clip(estimate, 0.0, 1.0) - clean) ** 2)))


def psnr_gain_matched(estimate: np.ndarray, clean: np.ndarray, clip_first: bool = True) -> float:
    """:func:`psnr` after scaling ``estimate`` by the one gain that fits it best to ``clean``.

    FMD's captures differ in brightness from their 50-capture gt by up to
    14 % (laser fluctuation, bleaching), which a per-frame denoiser must keep
    and the plain protocol charges to it. ``clip_first`` clips the estimate
    to [0, 1] before the gain is fitted (benchmarks/stacks.py); the noise
    ladder fits the gain on the estimate as it is (``clip_first=False``).
    """
    est = np.clip(estimate, 0.0, 1.0) if clip_first else estimate
    gain = float(np.sum(est * clean) / max(float(np.sum(est * est)), 1e-12))
    return psnr(gain * est, clean)


def gt_residual(noisy: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``noisy`` minus ``clean`` with the clean image's gain and offset fitted (FMD's brightness flickers), and that fit.

    FMD's gt is the mean of 50 captures that include the image's own: for a
    mean of k captures the residual holds ``(50 - k) / 50`` of its noise
    variance (benchmarks/noise_correlated.py measures this).
    """
    design = np.stack([clean.ravel(), np.ones(clean.size)], axis=1)
    fitted = (design @ np.linalg.lstsq(design, noisy.ravel(), rcond=None)[0]).reshape(noisy.shape)
    return noisy - fitted, fitted


def residual_autocorrelation(residual: np.ndarray, radius: int) -> np.ndarray:
    """The ``(2 radius + 1)^2`` autocorrelation of ``residual`` around lag 0 (1 there), unbiased per lag.

    :func:`napari_mpid.core.noise_profile.autocorrelation`, which a noise profile stores.
    """
    from napari_mpid.core.noise_profile import autocorrelation

    return autocorrelation(residual, radius)


def kernel_slope(acf: np.ndarray, sigma: float) -> float:
    """``sum k(dy) k(dx) a(dy, dx)`` for the Gaussian kernel of ``sigma`` and the autocorrelation ``a`` (``acf``).

    :func:`~napari_mpid.core.auto.risk.blur_slope` with a measured
    autocorrelation, as a noise profile gives it (a kernel wider than it
    is cut to its reach).
    """
    from napari_mpid.core.auto.risk import blur_slope

    return blur_slope(sigma, 0.0, acf)


def scaled_noise(noise: Any, factor: float) -> Any:
    """A :class:`~napari_mpid.core.noise.NoiseEstimate` whose noise-level line (variance) is ``factor`` times ``noise``'s."""
    import dataclasses

    return dataclasses.replace(
        noise,
        sigma=noise.sigma * np.sqrt(factor),
        gain=noise.gain * factor,
        offset=noise.offset * factor,
        floor=noise.floor * factor,
    )


def mix_alone_psnr(noisy: np.ndarray, clean: np.ndarray, noise: Any) -> float:
    """PSNR of the auto preset's final mix alone (no candidate, no network) of a ``(H, W)`` plane with ``noise``."""
    from napari_mpid.core.auto import combine

    held = np.random.default_rng(0).random(noisy.shape) < 0.04
    mixed, _ = combine(noisy[None], {}, held, noise)
    return psnr(mixed[0], clean)
