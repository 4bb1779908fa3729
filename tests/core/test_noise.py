"""Noise estimation from a single plane, on synthetic images of known noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_mpid.core.noise import estimate_noise

from .helpers import filaments


def _cells(size: int = 256, seed: int = 0) -> np.ndarray:
    """A smooth fluorescence-like image in [0, 0.8]: blurred blobs on a dim background."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    image = np.full((size, size), 0.05)
    for _ in range(40):
        cy, cx, r, a = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(4, 16), rng.uniform(0.1, 0.5)
        image += a * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r**2))
    return np.clip(image, 0, 0.8)


def _correlate(noise: np.ndarray) -> np.ndarray:
    """Spatially correlated noise of the same variance: a [1, 2, 1] blur in both directions."""
    k = np.array([0.25, 0.5, 0.25])
    out = noise
    for axis in (0, 1):
        out = sum(w * np.roll(out, s, axis=axis) for w, s in zip(k, (-1, 0, 1)))
    return out / out.std() * noise.std()


@pytest.mark.parametrize("sigma", [0.01, 0.05, 0.15])
def test_white_gaussian_noise_level_within_15_percent(sigma):
    clean = _cells()
    noisy = clean + np.random.default_rng(1).normal(0, sigma, clean.shape)
    found = estimate_noise(noisy)
    assert found.sigma == pytest.approx(sigma, rel=0.15)
    assert abs(found.correlation) < 0.1


@pytest.mark.parametrize("photons", [10, 50])
def test_poisson_gaussian_noise_level_within_15_percent(photons):
    clean = _cells(seed=2)
    rng = np.random.default_rng(3)
    noisy = rng.poisson(clean * photons) / photons + rng.normal(0, 0.01, clean.shape)
    true_sigma = float(np.sqrt(np.mean(clean / photons + 0.01**2)))
    found = estimate_noise(noisy)
    assert found.sigma == pytest.approx(true_sigma, rel=0.15)
    assert found.gain == pytest.approx(1 / photons, rel=0.3)


@pytest.mark.parametrize("sigma", [0.03, 0.1])
def test_correlated_noise_level_and_correlation(sigma):
    clean = _cells(seed=4)
    noise = _correlate(np.random.default_rng(5).normal(0, sigma, clean.shape))
    true_corr = float(
        np.mean(
            [
                np.corrcoef(noise[:, 1:].ravel(), noise[:, :-1].ravel())[0, 1],
                np.corrcoef(noise[1:].ravel(), noise[:-1].ravel())[0, 1],
            ]
        )
    )
    found = estimate_noise(clean + noise)
    assert found.sigma == pytest.approx(sigma, rel=0.15)
    assert found.correlation == pytest.approx(true_corr, abs=0.1)


def test_correlated_poisson_gaussian_noise_level():
    clean = _cells(seed=6)
    rng = np.random.default_rng(7)
    shot = rng.poisson(clean * 20) / 20 - clean
    noise = _correlate(shot) + rng.normal(0, 0.01, clean.shape)
    found = estimate_noise(clean + noise)
    assert found.sigma == pytest.approx(float(noise.std()), rel=0.15)
    assert found.correlation > 0.3


def _reaching(shape: tuple[int, int], s: float, t: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance noise blurred by [t, s, 1, s, t] along each axis: correlated up to lag 4."""
    noise = rng.standard_normal(shape)
    k = np.array([t, s, 1.0, s, t])
    for axis in (0, 1):
        noise = sum(w * np.roll(noise, shift, axis=axis) for w, shift in zip(k, (-2, -1, 0, 1, 2)))
    return noise / noise.std()


def test_noise_correlated_two_pixels_far_is_measured_within_15_percent():
    # A calibration on [s, 1, s] noise alone, indexed by the blocks' lag-1, read this
    # noise (lag-1 0.56, lag-2 0.31) at 0.79 of its variance and lag-1 0.47: detrending
    # removes more of a correlation that reaches farther. The blocks' lag-2 tells.
    clean = _cells(seed=12)
    noise = 0.04 * _reaching(clean.shape, 0.3, 0.15, np.random.default_rng(13))
    true_corr = float(np.mean([np.mean(noise[:, 1:] * noise[:, :-1]), np.mean(noise[1:] * noise[:-1])])) / 0.04**2

    found = estimate_noise(clean + noise)

    assert found.sigma**2 == pytest.approx(0.04**2, rel=0.15)
    assert found.correlation == pytest.approx(true_corr, abs=0.05)


def test_tiny_planes_are_refused():
    with pytest.raises(ValueError, match="at least"):
        estimate_noise(np.zeros((16, 64)))


def test_colour_noise_is_estimated_per_channel_not_on_their_mean():
    # Independent noise in three channels: their mean holds a third of the variance.
    from napari_mpid.core.noise import estimate_noise_channels

    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:128, 0:128] / 128.0
    clean = np.stack([0.3 + 0.2 * np.sin(3 * x + k) * np.cos(2 * y) for k in range(3)])
    noisy = clean + rng.normal(0, 0.1, clean.shape)
    found = estimate_noise_channels(noisy)
    assert found.sigma == pytest.approx(0.1, rel=0.15)
    assert estimate_noise_channels(noisy[:1]).sigma == pytest.approx(0.1, rel=0.15)


@pytest.mark.parametrize("sigma", [0.005, 0.01])
def test_weak_white_noise_on_dense_texture_is_not_taken_for_strong_correlated_noise(sigma):
    # Filaments that a quadratic cannot follow within 8x8 blocks made the block
    # estimate alone report 2.25x (sigma 0.005, lag-1 "correlation" 0.53) and 1.4x
    # (0.01, 0.30) the noise level, as on weakly noisy FMD confocal planes; the
    # patch spectrum sees white noise. Texture twice as strong still fools it
    # (docs/benchmarks.md, "Noise estimate").
    clean = filaments()
    noisy = clean + np.random.default_rng(10).normal(0, sigma, clean.shape)
    found = estimate_noise(noisy)
    assert found.sigma == pytest.approx(sigma, rel=0.15)
    assert found.correlation < 0.1


def test_patch_variance_of_pure_white_noise():
    from napari_mpid.core.noise import patch_noise_variance

    noise = np.random.default_rng(11).normal(0, 0.1, (128, 128))
    assert patch_noise_variance(noise) == pytest.approx(0.01, rel=0.05)


FMD = Path(__file__).resolve().parents[3] / "shared" / "data" / "eval" / "fmd_test_mix"


def _fmd_capture(name: str) -> tuple[np.ndarray, float]:
    """A full raw FMD capture in [0, 1] and its noise variance measured against gt.

    gt's gain and offset are fitted (capture brightness flickers); gt is the
    mean of 50 captures including this one: var(raw - gt) = (1 - 1/50) var.
    """
    from PIL import Image

    raw = np.asarray(Image.open(FMD / "raw" / name), dtype=np.float64) / 255
    gt = np.asarray(Image.open(FMD / "gt" / name), dtype=np.float64) / 255
    design = np.stack([gt.ravel(), np.ones(gt.size)], axis=1)
    fitted = design @ np.linalg.lstsq(design, raw.ravel(), rcond=None)[0]
    return raw, float(np.mean((raw.ravel() - fitted) ** 2)) * 50 / 49


@pytest.mark.skipif(not FMD.exists(), reason="needs ../shared/data/eval (FMD test_mix)")
def test_shot_noise_on_a_full_fmd_image_is_measured_within_15_percent():
    # The blocks' level read 0.75 of the variance measured against gt on this full
    # 512x512 capture; the patch spectrum reads 0.98.
    raw, measured = _fmd_capture("Confocal_FISH_1.png")

    found = estimate_noise(raw)

    assert found.sigma**2 == pytest.approx(measured, rel=0.15)


@pytest.mark.skipif(not FMD.exists(), reason="needs ../shared/data/eval (FMD test_mix)")
def test_correlated_noise_on_a_full_wide_field_fmd_image_is_measured_within_15_percent():
    # Wide-field B noise reaches farther than [s, 1, s] (lag-2 correlation about twice
    # what [s, 1, s] gives at its lag-1): the one-correlation calibration read 0.78 of
    # its variance.
    raw, measured = _fmd_capture("WideField_BPAE_B_1.png")

    found = estimate_noise(raw)

    assert found.sigma**2 == pytest.approx(measured, rel=0.15)
    assert found.correlation > 0.45


@pytest.mark.parametrize("sigma", [0.005, 0.01])
def test_noise_of_one_level_on_dense_texture_does_not_read_as_growing_with_the_signal(sigma):
    # The quietest blocks of the bright bins still hold filaments that a quadratic
    # does not follow: the blocks' line had a slope, its variance at the 90th
    # percentile of the pixels 5.5x (sigma 0.005) and 2.4x (0.01) that at the 10th,
    # above the auto preset's shot-noise gate (SIGNAL_DEPENDENT). The line of the
    # highest frequencies stays flat.
    from napari_mpid.core.auto import SIGNAL_DEPENDENT

    clean = filaments()
    noisy = clean + np.random.default_rng(13).normal(0, sigma, clean.shape)
    found = estimate_noise(noisy)
    variance = found.variance(noisy)
    assert found.correlation == 0.0
    assert np.percentile(variance, 90) < 0.75 * SIGNAL_DEPENDENT * np.percentile(variance, 10)
    assert found.sigma == pytest.approx(sigma, rel=0.15)


@pytest.mark.parametrize("sigma", [0.01, 0.03])
def test_resampled_noise_keeps_its_variance(sigma):
    # A half-pixel shift by cubic interpolation (as a registered plane has) makes the
    # noise low-pass: 0.64 of its variance is left, most of it below the highest
    # frequencies. A rule that reads the level from those frequencies, or from the
    # patch spectrum's floor, cuts it; the estimate must stay within 15 %.
    clean = _cells(seed=6)
    noisy = clean + np.random.default_rng(12).normal(0, sigma, clean.shape)
    taps = np.array([-1.0, 9.0, 9.0, -1.0]) / 16
    shifted = sum(w * np.roll(noisy, s, axis=0) for w, s in zip(taps, (-1, 0, 1, 2)))
    found = estimate_noise(shifted)
    assert found.correlation == 0.0
    assert found.sigma**2 == pytest.approx(sigma**2 * float((taps**2).sum()), rel=0.15)
    variance = found.variance(shifted)
    assert np.percentile(variance, 90) < 1.5 * np.percentile(variance, 10)
