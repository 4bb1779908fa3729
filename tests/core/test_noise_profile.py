"""The noise profile: measured from repeated exposures, stored, and used by a run in place of the estimate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_mpid.core.auto.risk import COMBINE_SIGMAS, blur_slope
from napari_mpid.core.engine import InputError, denoise_planes
from napari_mpid.core.filters import convolve_separable, gaussian_kernel
from napari_mpid.core.noise import correlated_noise, noise_autocorrelation
from napari_mpid.core.noise_profile import FORMAT, NoiseProfile, autocorrelation, load_profile, measure_profile
from napari_mpid.core.params import ParameterError, preset

from .helpers import filaments, run

#: The synthetic camera: variance = GAIN * counts + READ, correlated by the kernel [s, 1, s] (s = STRENGTH).
GAIN, READ, STRENGTH = 4.0, 100.0, 0.5


def true_lag1(strength: float) -> float:
    """Lag-1 correlation of white noise blurred by [s, 1, s] along each axis: 2s / (1 + 2s^2)."""
    return 2 * strength / (1 + 2 * strength**2)


def scene(size: int = 128) -> np.ndarray:
    """A field in camera counts (200-2000): bright blobs on fine filaments."""
    yy, xx = np.mgrid[:size, :size]
    blobs = 1200 * np.exp(-((yy - size / 2) ** 2 + (xx - size / 3) ** 2) / (size * 4))
    return 200 + 2000 * filaments(size, seed=3) + blobs


def exposures(clean: np.ndarray, count: int, seed: int, strength: float = STRENGTH) -> np.ndarray:
    """``count`` exposures of ``clean`` with the synthetic camera's correlated, signal-dependent noise."""
    rng = np.random.default_rng(seed)
    scale = np.sqrt(GAIN * clean + READ)
    return np.stack([clean + scale * correlated_noise(clean.shape, strength, rng) for _ in range(count)])


@pytest.fixture(scope="module")
def profile() -> NoiseProfile:
    return measure_profile(exposures(scene(), 4, seed=1))


def test_the_profile_reads_the_cameras_line_and_correlation(profile):
    clean = scene()
    # What a pixel's noise variance is at the scene's intensities, against what the profile says.
    assert np.mean(profile.variance(clean)) == pytest.approx(np.mean(GAIN * clean + READ), rel=0.08)
    assert profile.gain == pytest.approx(GAIN, rel=0.15)
    assert profile.correlation == pytest.approx(true_lag1(STRENGTH), abs=0.03)
    c = profile.autocorrelation.shape[0] // 2
    assert profile.autocorrelation[c, c] == 1.0
    # [s, 1, s] reaches two pixels: its autocorrelation at lag 2 is s^2 / (1 + 2 s^2), at lag 3 nothing.
    assert profile.autocorrelation[c, c + 2] == pytest.approx(STRENGTH**2 / (1 + 2 * STRENGTH**2), abs=0.03)
    assert abs(profile.autocorrelation[c, c + 3]) < 0.03
    assert profile.frames == 4 and profile.pairs == 6 and not profile.changed_field()


def test_two_exposures_of_correlated_noise_are_cautioned_about_and_more_are_not(profile):
    assert profile.cautions() == []
    two = measure_profile(exposures(scene(), 2, seed=7))
    assert any(c.startswith("two exposures of correlated noise") for c in two.cautions())
    white = measure_profile(exposures(scene(), 2, seed=7, strength=0.0))
    assert white.cautions() == []


def test_the_floor_is_the_read_noise_where_the_line_stays_positive_and_a_bin_where_it_does_not():
    rng = np.random.default_rng(8)
    field = np.broadcast_to(np.linspace(0.0, 400.0, 128), (128, 128))
    # Poisson counts plus read noise of variance 25: noise takes dark pixels below zero.
    frames = np.stack([rng.poisson(field) + rng.normal(0.0, 5.0, field.shape) for _ in range(4)])
    found = measure_profile(frames)
    assert found.floor == pytest.approx(25.0, rel=0.3) and found.floor == pytest.approx(found.offset)
    # A black level of 100 counts and little read noise: the line (offset about -100) nears or crosses
    # zero at the darkest pixels; the profile still gives them a positive variance, below the bins'.
    dark = np.stack([100 + rng.poisson(field) + rng.normal(0.0, 1.0, field.shape) for _ in range(4)])
    black = measure_profile(dark)
    assert black.offset < -80
    assert 0 < black.variance(dark.min()) <= 15.0


def test_white_noise_reads_uncorrelated():
    found = measure_profile(exposures(scene(), 3, seed=2, strength=0.0))
    assert abs(found.correlation) < 0.02


def test_a_field_that_moved_between_exposures_is_flagged():
    clean = scene()
    frames = exposures(clean, 3, seed=4)
    frames[2] += np.roll(clean, 2, axis=1) - clean  # the sample moved by 2 pixels before the last exposure
    moved = measure_profile(frames)
    assert moved.changed_field() and any("moved or bleached" in c for c in moved.cautions())
    assert not measure_profile(frames[:2]).changed_field()


def test_the_line_maps_through_a_runs_intensity_scale(profile):
    counts = scene()
    low, high = 150.0, 2600.0
    scaled = (counts - low) / (high - low)
    noise = profile.for_plane(scaled, low, high)
    # The scaled variance, times the scale's span squared, is the profile's variance in counts, up to
    # the one factor that sets the plane's level from its smoothed intensities (1 where no pixel
    # reaches the floor, as on this bright scene).
    ratio = noise.variance(scaled) * (high - low) ** 2 / profile.variance(counts)
    assert np.ptp(ratio) < 1e-9 and ratio[0, 0] == pytest.approx(1.0, abs=1e-3)
    assert noise.sigma**2 == pytest.approx(np.mean(noise.variance(scaled)), rel=1e-9)
    assert noise.correlation == profile.correlation
    assert noise.autocorrelation is profile.autocorrelation
    averaged = noise.averaged(4)
    assert averaged.sigma == pytest.approx(noise.sigma / 2) and averaged.gain == pytest.approx(noise.gain / 4)


def test_the_level_on_a_dark_plane_is_the_true_mean_variance():
    """Noise takes dark pixels below the floor's reach; the level must not follow it up."""
    rng = np.random.default_rng(9)
    clean = np.clip(filaments(128, seed=4) - 0.1, 0.0, None)  # mostly empty background at 0
    camera = measure_profile(
        np.stack([rng.poisson(clean * 20) / 20 + rng.normal(0, 0.02, clean.shape) for _ in range(4)])
    )
    noisy = rng.poisson(clean * 20) / 20 + rng.normal(0, 0.02, clean.shape)
    level = camera.for_plane(noisy, 0.0, 1.0).sigma ** 2
    truth = float(np.mean(clean / 20 + 0.02**2))
    assert level == pytest.approx(truth, rel=0.05)
    unsmoothed = float(np.mean(camera.variance(noisy)))  # the line read at every noisy pixel, floored
    assert unsmoothed > 1.05 * truth


def test_the_blur_slope_of_the_models_own_autocorrelation_is_the_models(profile):
    for rho in (0.0, 0.3, 0.6):
        a = noise_autocorrelation(rho)
        window = np.zeros((25, 25))
        window[10:15, 10:15] = np.outer(a, a)
        for sigma in COMBINE_SIGMAS:
            assert blur_slope(sigma, rho, window) == pytest.approx(blur_slope(sigma, rho), rel=1e-12)


def test_a_measured_autocorrelation_makes_the_blurs_risk_right_under_correlated_noise(profile):
    """SURE of a blur needs its slope: with the measured autocorrelation it is unbiased, with white noise not."""
    clean = scene(96)
    rng = np.random.default_rng(5)
    sigma = 1.5
    kernel = gaussian_kernel(sigma)
    true, measured, white = [], [], []
    for _ in range(40):
        noise = np.sqrt(GAIN * clean + READ) * correlated_noise(clean.shape, STRENGTH, rng)
        noisy = clean + noise
        out = convolve_separable(noisy, kernel)
        variance = GAIN * clean + READ
        true.append(np.mean((out - clean) ** 2))
        residual = np.mean((out - noisy) ** 2) - np.mean(variance)
        measured.append(residual + 2 * np.mean(variance) * blur_slope(sigma, 0.0, profile.autocorrelation))
        white.append(residual + 2 * np.mean(variance) * blur_slope(sigma, 0.0))
    assert np.mean(measured) / np.mean(true) == pytest.approx(1.0, abs=0.05)
    assert abs(np.mean(white) / np.mean(true) - 1) > 0.2


def test_save_and_load_give_the_same_profile(profile, tmp_path):
    path = profile.save(tmp_path / "scope.json")
    back = load_profile(path)
    assert json.loads(path.read_text())["format"] == FORMAT
    for name in ("gain", "offset", "floor", "low", "high", "frames", "pairs", "dtype", "pair_variances"):
        assert getattr(back, name) == getattr(profile, name)
    np.testing.assert_allclose(back.autocorrelation, profile.autocorrelation, atol=1e-6)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("not json", "not readable JSON"),
        ('{"format": "something else"}', "is not a napari-mpid noise profile"),
        (f'{{"format": "{FORMAT}", "gain": 1}}', "lacks or mangles a field"),
    ],
)
def test_a_bad_profile_file_names_the_problem(tmp_path, content, message):
    path = tmp_path / "profile.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=message):
        load_profile(path)


def test_a_profile_with_a_mangled_autocorrelation_is_refused(profile, tmp_path):
    record = profile.to_dict()
    record["autocorrelation"] = [[0.5, 0.2], [0.2, 0.5]]
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(record))
    with pytest.raises(InputError, match="square, odd-sided and 1 at its centre"):
        load_profile(path)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (np.ones((1, 64, 64)), "at least two exposures"),
        (np.ones((64, 64)), "at least two exposures"),
        (np.ones((2, 16, 64)), "at least 32 pixels"),
        (np.stack([np.arange(64.0 * 64).reshape(64, 64)] * 2), "identical"),
        (np.full((2, 64, 64), np.nan), "NaN"),
    ],
)
def test_bad_calibration_frames_are_refused(frames, message):
    with pytest.raises(InputError, match=message):
        measure_profile(frames)


def test_the_calibration_frames_are_not_modified():
    frames = exposures(scene(64), 2, seed=6).astype(np.float32)
    before = frames.copy()
    measure_profile(frames)
    np.testing.assert_array_equal(frames, before)


def test_autocorrelation_of_white_noise_is_a_spike():
    a = autocorrelation(np.random.default_rng(0).normal(size=(256, 256)), 2)
    assert a[2, 2] == 1.0 and np.abs(np.delete(a.ravel(), 12)).max() < 0.02


def _psnr(x: np.ndarray, clean: np.ndarray) -> float:
    return float(10 * np.log10(np.ptp(clean) ** 2 / np.mean((x - clean) ** 2)))


def test_a_run_with_the_profile_denoises_correlated_noise_better_than_the_estimate(profile, tmp_path):
    clean = scene()
    noisy = exposures(clean, 1, seed=11)[0].astype(np.float32)
    path = profile.save(tmp_path / "scope.json")
    mix = preset("auto", iterations=0)
    _, estimated = run(denoise_planes(noisy, mix))
    _, profiled = run(denoise_planes(noisy, mix.replace(noise_profile=str(path))))
    assert _psnr(profiled.denoised, clean) > _psnr(estimated.denoised, clean) + 1.0
    assert any("noise from the profile" in note for note in profiled.notes)
    assert not profiled.warnings


def test_a_profile_far_from_the_planes_own_noise_is_reported(profile, tmp_path):
    clean = scene()
    noisy = exposures(clean, 1, seed=12)[0].astype(np.float32)
    record = profile.to_dict()
    record.update(gain=profile.gain * 20, offset=profile.offset * 20, floor=profile.floor * 20)
    path = tmp_path / "other_settings.json"
    path.write_text(json.dumps(record))
    _, result = run(denoise_planes(noisy, preset("auto", iterations=0, noise_profile=str(path))))
    assert any(w.startswith("noise profile: on plane 0 it predicts") for w in result.warnings)


def test_a_static_scenes_mean_gets_the_profile_over_its_exposures(profile, tmp_path):
    clean = scene(64)
    frames = exposures(clean, 4, seed=13).astype(np.float32)
    path = profile.save(tmp_path / "scope.json")
    params = preset("auto", iterations=0, static_scene=True, noise_profile=str(path))
    _, result = run(denoise_planes(frames, params, axes="TYX"))
    sigma = float(result.choices[0]["noise_sigma"])
    scale = result.scales[0][1] - result.scales[0][0]
    expected = np.sqrt(np.mean(profile.variance(frames.mean(axis=0))) / 4) / scale
    assert sigma == pytest.approx(expected, rel=0.02)


def test_a_copied_exposure_counts_once_in_the_means_noise(profile, tmp_path):
    clean = scene(64)
    frames = exposures(clean, 4, seed=14).astype(np.float32)
    frames[1] = frames[0]  # one frame saved twice: the mean holds 6/16 of one exposure's noise variance, not 4/16
    path = profile.save(tmp_path / "scope.json")
    params = preset("auto", iterations=0, static_scene=True, noise_profile=str(path))
    _, result = run(denoise_planes(frames, params, axes="TYX"))
    scale = result.scales[0][1] - result.scales[0][0]
    expected = np.sqrt(np.mean(profile.variance(frames.mean(axis=0))) * 6 / 16) / scale
    assert float(result.choices[0]["noise_sigma"]) == pytest.approx(expected, rel=0.02)


def test_a_profile_is_refused_for_colour_samples(profile, tmp_path):
    path = profile.save(tmp_path / "scope.json")
    rgb = np.zeros((64, 64, 3), np.float32)
    with pytest.raises(InputError, match="colour samples"):
        run(denoise_planes(rgb, preset("auto", noise_profile=str(path)), axes="YXS"))


def test_a_missing_profile_stops_the_run_before_any_work():
    with pytest.raises(InputError, match="does not exist"):
        run(denoise_planes(np.zeros((64, 64), np.float32), preset("auto", noise_profile="/no/such/profile.json")))


def test_the_papers_presets_take_no_profile():
    with pytest.raises(ParameterError, match="auto preset"):
        preset("fast", noise_profile="scope.json")


def test_the_time_estimate_asks_the_profile_whether_the_network_runs(profile, tmp_path, tiny_model):
    from napari_mpid.core.engine.estimate import network_for
    from napari_mpid.core.model.checkpoints import load_model
    from napari_mpid.core.run.plan import make_plan

    # Noise of one level, white: the estimate says the network earns its time.
    rng = np.random.default_rng(3)
    flat = (1000 + 30 * rng.normal(size=(64, 64))).astype(np.float32)
    path = profile.save(tmp_path / "scope.json")  # the correlated camera's profile
    params = preset("auto", model=tiny_model)
    for noise_profile, runs in ((None, True), (str(path), False)):
        p = params.replace(noise_profile=noise_profile)
        plan = make_plan(
            flat.shape, flat.dtype, p, load_model(tiny_model, torch.device("cpu")), torch.device("cpu"), axes="YX"
        )
        assert network_for(plan, flat)[0] is runs
