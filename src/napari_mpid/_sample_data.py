"""Sample data: a procedural fluorescence z-stack, and real noisy captures from the FMD dataset.

The synthetic stack is rendered here (numpy only). The real samples are
time series of one static field of view from FMD (Zhang et al., "A
Poisson-Gaussian Denoising Dataset with Real Fluorescence Microscopy
Images", CVPR 2019): four raw captures, one exposure each, with the
dataset's clean reference, the mean of 50 captures. They are downloaded on
first use (about 1 MB each, checked against pinned SHA-256 digests) into the
user cache folder, never at import; offline, the error names the address
and where to place the file by hand, and :func:`place_fmd_files` copies
them from a local copy of FMD's ``test_mix`` set.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from .core.cache import user_cache_dir
from .synthetic import fluorescence_stack

__all__ = [
    "FMD_FILES",
    "FMD_SAMPLES",
    "SampleDataError",
    "fetch_fmd_file",
    "fluorescence_sample",
    "fmd_series",
    "fmd_two_photon_sample",
    "fmd_wide_field_sample",
    "place_fmd_files",
]

#: The FMD files are served from a public GitHub copy of FMD's ``test_mix`` set at a pinned
#: commit: the dataset's own archives are on Google Drive, which needs a browser session.
FMD_COMMIT = "b8ad615b10908976061b718a0344cda2c225c318"
FMD_URL = "https://raw.githubusercontent.com/ZeroZero19/BoostNet/{commit}/testsets/cell/fmd_test_mix/{path}"
#: SHA-256 of every file used, by path within ``test_mix``.
FMD_FILES = {
    "raw/TwoPhoton_BPAE_G_1.png": "d13838b696ba13e41bc416fd7eec555a35660f0d8bd0b552d5f02ae5962ff6cb",
    "raw/TwoPhoton_BPAE_G_2.png": "4cd37566a7c94e3539b25cb1c272e3f70988cc17d31a398dc399087718306009",
    "raw/TwoPhoton_BPAE_G_3.png": "18ea8dd68c2e401266c86abca0081fc240085f7ad363f0b3929e8b09a07464c0",
    "raw/TwoPhoton_BPAE_G_4.png": "7b763ba64a9b405349620f59abc04969170b02be3398f1fafc885d3a5d1019fb",
    "gt/TwoPhoton_BPAE_G_1.png": "a177f1a67b65d02300d61e3bc24196a4d5f2e14493eda21abc119cf942bd00b7",
    "raw/WideField_BPAE_R_1.png": "b7def0a54e84a7debb743d7a130a79856f88c2a36226b20d84a12b50a3b10f57",
    "raw/WideField_BPAE_R_2.png": "e86f01269ce2c4884ee6d255229f8469868b8985c449e53e40223c2868b7f4d4",
    "raw/WideField_BPAE_R_3.png": "2d81d8b0f7d63cd22cd7aedbaf4d317e01ab62a3d67f801a7624b10859b32984",
    "raw/WideField_BPAE_R_4.png": "44b4b03518c8a6580b9cde08a2d44267f90068f47b173c229b9995010e1fb8eb",
    "gt/WideField_BPAE_R_1.png": "bbfd20d8b47a58d7cd8704da5dc7e4e8e6eb9e5a73654808f05425a84700b9c1",
}
#: The FMD configurations offered as samples, and what they show.
FMD_SAMPLES = {
    "TwoPhoton_BPAE_G": "two-photon microscope, BPAE cells, green channel (F-actin)",
    "WideField_BPAE_R": "wide-field microscope, BPAE cells, red channel (mitochondria), correlated camera noise",
}
FMD_SOURCE = (
    "FMD, the Fluorescence Microscopy Denoising dataset, test_mix set (Zhang et al., CVPR 2019; "
    "https://github.com/yinhaoz/denoising-fluorescence)"
)
FMD_LICENSE = (
    "MIT License, Copyright (c) 2019 Yinhao Zhu, Yide Zhang (LICENSE.md of "
    "https://github.com/yinhaoz/denoising-fluorescence, the dataset's repository)"
)
FMD_CITATION = (
    "Y. Zhang, Y. Zhu, E. Nichols, Q. Wang, S. Zhang, C. Smith, S. Howard, 'A Poisson-Gaussian Denoising "
    "Dataset with Real Fluorescence Microscopy Images', CVPR 2019"
)
#: Captures per configuration in ``test_mix`` (one static field of view each).
FMD_CAPTURES = 4
#: Seconds to wait for the server.
TIMEOUT = 30


class SampleDataError(RuntimeError):
    """A sample file cannot be downloaded or is not the expected file."""


def fluorescence_sample() -> list[tuple[Any, dict[str, Any], str]]:
    """A synthetic 5x256x256 uint16 fluorescence z-stack ("noisy") and its noise-free version ("clean")."""
    noisy, clean = fluorescence_stack()
    common = {"axis_labels": ("z", "y", "x")}
    limits = (float(clean.min()), float(clean.max()))
    return [
        (clean, {**common, "name": "clean", "contrast_limits": limits, "visible": False}, "image"),
        (noisy, {**common, "name": "noisy", "contrast_limits": limits}, "image"),
    ]


def _fmd_folder() -> Path:
    return user_cache_dir() / "samples" / "fmd_test_mix"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_fmd_file(path: str) -> Path:
    """The cached copy of FMD file ``path`` (e.g. "raw/TwoPhoton_BPAE_G_1.png"), downloaded if absent.

    Raises
    ------
    SampleDataError
        If the download fails (offline: the message names the address, the
        cache path and how to place the file by hand) or a file's SHA-256 is
        not the pinned one. Nothing partial is left in the cache.
    """
    expected = FMD_FILES[path]
    target = _fmd_folder() / path
    url = FMD_URL.format(commit=FMD_COMMIT, path=path)
    if target.is_file():
        found = _sha256(target)
        if found != expected:
            raise SampleDataError(
                f"{target} is not the expected file (SHA-256 {found[:16]}..., expected {expected[:16]}...): "
                f"delete it to download it again from {url}"
            )
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.part")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
    except (OSError, http.client.HTTPException) as exc:  # URLError and timeouts are OSErrors
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise SampleDataError(
            f"could not download {url} ({reason}); offline, place that file at {target} "
            f"(SHA-256 {expected}) or copy FMD's test_mix folder with napari_mpid._sample_data.place_fmd_files"
        ) from None
    found = _sha256(partial)
    if found != expected:
        partial.unlink()
        raise SampleDataError(
            f"the file downloaded from {url} is not the expected one (SHA-256 {found[:16]}..., "
            f"expected {expected[:16]}...); nothing was kept"
        )
    os.replace(partial, target)
    return target


def place_fmd_files(folder: str | Path) -> int:
    """Copy the sample's files from a local copy of FMD's ``test_mix`` folder into the cache; return how many.

    ``folder`` holds ``raw/`` and ``gt/`` as in the dataset. Only files whose
    SHA-256 is the pinned one are copied; files already cached are kept.
    """
    folder = Path(folder)
    placed = 0
    for path, expected in FMD_FILES.items():
        source, target = folder / path, _fmd_folder() / path
        if target.is_file() or not source.is_file() or _sha256(source) != expected:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.part")
        shutil.copyfile(source, partial)
        os.replace(partial, target)
        placed += 1
    return placed


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


def fmd_series(config: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One FMD configuration: raw captures ``(4, 512, 512)`` uint8, the clean mean of 50 ``(512, 512)``, file paths.

    Downloads what is not cached yet (see :func:`fetch_fmd_file`).
    """
    if config not in FMD_SAMPLES:
        raise SampleDataError(f"unknown FMD sample {config!r}; choose one of {', '.join(FMD_SAMPLES)}")
    raw = [f"raw/{config}_{k}.png" for k in range(1, FMD_CAPTURES + 1)]
    clean_path = f"gt/{config}_1.png"  # the clean reference: one per field of view
    noisy = np.stack([_read_png(fetch_fmd_file(p)) for p in raw])
    clean = _read_png(fetch_fmd_file(clean_path))
    return noisy, clean, [*raw, clean_path]


def _fmd_sample(config: str) -> list[tuple[Any, dict[str, Any], str]]:
    noisy, clean, paths = fmd_series(config)
    what = FMD_SAMPLES[config]
    common = {
        "source": FMD_SOURCE,
        "license": FMD_LICENSE,
        "citation": FMD_CITATION,
        "configuration": config,
        "urls": [FMD_URL.format(commit=FMD_COMMIT, path=p) for p in paths],
        "sha256": {p: FMD_FILES[p] for p in paths},
    }
    limits = (0.0, float(np.percentile(clean, 99.9)))
    noisy_meta = {
        **common,
        "description": f"{what}: {FMD_CAPTURES} raw captures (one exposure each) of one static field of view, "
        "stacked as a time series",
    }
    clean_meta = {**common, "description": f"{what}: the clean reference, the mean of 50 captures of the same field"}
    return [
        (clean, {"name": f"{config} clean", "metadata": clean_meta, "contrast_limits": limits, "visible": False,
                 "axis_labels": ("y", "x")}, "image"),
        (noisy, {"name": f"{config} noisy", "metadata": noisy_meta, "contrast_limits": limits,
                 "axis_labels": ("t", "y", "x")}, "image"),
    ]  # fmt: skip


def fmd_two_photon_sample() -> list[tuple[Any, dict[str, Any], str]]:
    """Real two-photon captures (FMD TwoPhoton_BPAE_G): 4 noisy frames of one field of view and its clean mean."""
    return _fmd_sample("TwoPhoton_BPAE_G")


def fmd_wide_field_sample() -> list[tuple[Any, dict[str, Any], str]]:
    """Real wide-field captures (FMD WideField_BPAE_R): 4 noisy frames of one field of view and its clean mean."""
    return _fmd_sample("WideField_BPAE_R")
