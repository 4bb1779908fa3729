"""The Poisson-Gaussian risk estimate of benchmarks/pg_risk.py is unbiased for every candidate family.

On a small synthetic fluorescence-like plane under Poisson-Gaussian noise
(gain 0.01, read-noise variance 1e-4, the noise-level line known), the
mean over seeded noise draws of the estimated risk (with the second-order
Poisson term, ``pg_risk.mc_poisson_curvature``) must equal the mean true
squared error within 5 % for the noisy pixel, a Gaussian blur, the locally
adaptive Wiener filter and NL-means on the stabilised plane; and
an estimate made biased on purpose (a variance 20 % high; Gaussian SURE
with the mean variance, which ignores where a non-linear filter follows
its input; a candidate that claims independence of a pixel it uses, the
mistake of reusing held-out pixels) must miss by more than 5 %.

The draw-to-draw spread of the estimate is mostly that of the noise's own
squared norm, ``|n|^2 / N - mean(v(y))``, whose mean is known to be zero
(``v(y) = a y + b`` is unbiased for the variance); it is subtracted from
every estimate (a control variate), which leaves each estimate's bias and
removes most of the spread. The noisy pixel's own estimate is that term,
checked without it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import convolve, gaussian_filter

from napari_mpid.core.noise import NoiseEstimate

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
GAIN, READ = 0.01, 1e-4
DRAWS = 48
SIDE = 128


@pytest.fixture(scope="module")
def pg_risk():
    spec = importlib.util.spec_from_file_location("pg_risk", BENCHMARKS / "pg_risk.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("pg_risk", module)
    spec.loader.exec_module(module)
    return module


def clean_plane(side: int = SIDE) -> np.ndarray:
    """Gaussian blobs and a sharp bar on a dim background, intensities 0.04-0.9 (seeded)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side]
    plane = np.full((side, side), 0.04)
    for _ in range(8):
        cy, cx = rng.uniform(0, side, 2)
        radius, height = rng.uniform(3, 10), rng.uniform(0.2, 0.7)
        plane += height * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
    plane[side // 4 : side // 2, side // 3 : side // 3 + 4] += 0.4
    return gaussian_filter(plane, 0.7)


#: The 4 nearest neighbours' mean leaves the pixel out: independent of its noise (divergence 0).
NEIGHBOURS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]]) / 4.0
#: The 3x3 box mean uses the pixel: claiming divergence 0 for it is the held-out reuse mistake.
BOX = np.ones((3, 3)) / 9.0


def candidates(pg_risk, noise: NoiseEstimate) -> dict:
    """name -> function of a plane returning ``{name: output}``."""
    return {
        "noisy": lambda z: {"noisy": z},
        "blur 1": lambda z: {"blur 1": gaussian_filter(z, 1.0, mode="reflect")},
        "wiener 2": lambda z: {"wiener 2": pg_risk.adaptive_wiener(z, noise, (2.0,))["wiener 2"]},
        "nlm": lambda z: {"nlm": pg_risk.nl_means(z, noise, hs=(0.7,), search=3)["nlm h 0.7"]},
        "neighbours": lambda z: {"neighbours": convolve(z, NEIGHBOURS, mode="mirror")},
        "box": lambda z: {"box": convolve(z, BOX, mode="reflect")},
    }


@pytest.fixture(scope="module")
def draws(pg_risk):
    """Per family, per draw: true error, the estimate, and its biased variants (control variate applied)."""
    clean = clean_plane()
    noise = NoiseEstimate(float(np.sqrt(np.mean(GAIN * clean + READ))), 0.0, GAIN, READ, 0.0)
    rng = np.random.default_rng(1)
    found: dict[str, list[dict[str, float]]] = {}
    for k in range(DRAWS):
        noisy = GAIN * rng.poisson(clean / GAIN) + rng.normal(0.0, np.sqrt(READ), clean.shape)
        variance = pg_risk.pixel_variance(noisy, noise)
        # |n|^2 / N - mean(v(y)) has mean zero: subtracted from every estimate below.
        control = float(np.mean((noisy - clean) ** 2) - np.mean(variance))
        for name, function in candidates(pg_risk, noise).items():
            (out,) = function(noisy).values()
            divergence = next(iter(pg_risk.mc_divergence(function, noisy, np.sqrt(variance), 0.0, seed=k).values()))
            # Hudson's identity to second order: NL-means' weights bend at the scale of one photon.
            divergence -= next(iter(pg_risk.mc_poisson_curvature(function, noisy, GAIN, READ, seed=k).values()))
            plain = next(iter(pg_risk.mc_divergence(function, noisy, np.sqrt(variance.mean()), 0.0, seed=k).values()))
            found.setdefault(name, []).append(
                {
                    "true": float(np.mean((out - clean) ** 2)),
                    "estimate": pg_risk.risk(out, noisy, variance, divergence) - (0 if name == "noisy" else control),
                    "variance 20 % high": pg_risk.risk(out, noisy, 1.2 * variance, 1.2 * divergence) - control,
                    "mean variance": pg_risk.risk(out, noisy, variance, plain) - control,
                    "claimed independent": pg_risk.risk(out, noisy, variance, 0.0) - control,
                }
            )
    return found


def ratio(draws, family: str, key: str) -> float:
    rows = draws[family]
    return float(np.mean([r[key] for r in rows]) / np.mean([r["true"] for r in rows]))


@pytest.mark.slow
@pytest.mark.parametrize("family", ["noisy", "blur 1", "wiener 2", "nlm", "neighbours"])
def test_risk_estimate_is_unbiased_for_every_family(draws, family):
    assert abs(ratio(draws, family, "estimate") - 1) < 0.05


@pytest.mark.slow
@pytest.mark.parametrize(
    ("family", "biased"),
    [
        ("noisy", "variance 20 % high"),
        ("blur 1", "variance 20 % high"),
        ("nlm", "variance 20 % high"),
        ("wiener 2", "mean variance"),
        ("nlm", "mean variance"),
        ("box", "claimed independent"),
    ],
)
def test_a_biased_estimate_misses(draws, family, biased):
    assert abs(ratio(draws, family, biased) - 1) > 0.05


@pytest.mark.slow
def test_a_pixel_left_out_needs_no_divergence_but_one_reused_does(draws):
    """The held-out rule: independence of a pixel's noise may be claimed only where the pixel is not used."""
    assert abs(ratio(draws, "neighbours", "claimed independent") - 1) < 0.05
    assert abs(ratio(draws, "box", "estimate") - 1) < 0.05
    assert abs(ratio(draws, "box", "claimed independent") - 1) > 0.05
