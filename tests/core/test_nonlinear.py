"""The mix's risk estimate is unbiased under Poisson-Gaussian noise for every candidate family, and misses when biased.

On a small synthetic fluorescence-like plane (blobs and a sharp bar on a dim
background) under Poisson-Gaussian noise with the noise-level line known,
the mean over seeded draws of ``|f - y|^2 / N + 2 D - mean(v)`` (``v`` the
line at the noisy pixel, ``D`` from :func:`~napari_mpid.core.auto.nonlinear.divergence`)
must equal the mean true squared error within 5 % for the noisy pixel, a
Gaussian blur, NL-means, the shrunk bands and a J-invariant neighbour mean.
Estimates made biased on purpose must miss by more than 5 %: a variance 20 %
high, Gaussian SURE with the mean variance (right for a blur, not where a
filter follows its input unevenly), and a candidate that claims independence
of a pixel it uses (the mistake of reusing held-out pixels).

The estimate is first order in the Poisson gain (Hudson's identity): here
the dimmest pixels hold ~20 photons; at a handful of photons NL-means' weights
bend at the scale of one photon and the first-order estimate reads low
(docs/benchmarks.md, "Non-linear candidates in the mix").

The draw-to-draw spread is mostly the noise's own ``|n|^2 / N - mean(v)``,
whose mean is zero; it is subtracted from every estimate (a control variate)
but the noisy pixel's, whose estimate it is.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_mpid.core.auto.nonlinear import divergence, nl_means, pixel_variance, shrunk_bands
from napari_mpid.core.filters import convolve_separable, gaussian_kernel
from napari_mpid.core.noise import NoiseEstimate

GAIN, READ = 0.002, 1e-4
DRAWS = 32
SIDE = 80


def clean_plane(side: int = SIDE) -> np.ndarray:
    """Gaussian blobs and a sharp bar on a dim background, intensities 0.04-0.9 (seeded)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side]
    plane = np.full((side, side), 0.04)
    for _ in range(6):
        cy, cx = rng.uniform(0, side, 2)
        radius, height = rng.uniform(3, 8), rng.uniform(0.2, 0.7)
        plane += height * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
    plane[side // 4 : side // 2, side // 3 : side // 3 + 4] += 0.4
    return convolve_separable(plane, gaussian_kernel(0.7))


def _shifted_sum(z: np.ndarray, weights: dict[tuple[int, int], float]) -> np.ndarray:
    padded = np.pad(z, 1, mode="reflect")
    h, w = z.shape
    return sum(c * padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for (dy, dx), c in weights.items())


#: The 4 nearest neighbours' mean leaves the pixel out: independent of its noise (divergence 0).
NEIGHBOURS = {(-1, 0): 0.25, (1, 0): 0.25, (0, -1): 0.25, (0, 1): 0.25}
#: The 3x3 box mean uses the pixel: claiming divergence 0 for it is the held-out reuse mistake.
BOX = {(dy, dx): 1 / 9 for dy in (-1, 0, 1) for dx in (-1, 0, 1)}


def families(noise: NoiseEstimate) -> dict:
    """name -> function of a plane returning ``{name: output}``."""
    return {
        "noisy": lambda z: {"noisy": z},
        "blur 1": lambda z: {"blur 1": convolve_separable(z, gaussian_kernel(1.0))},
        "nlm": lambda z: {"nlm": nl_means(z, noise, hs=(0.7,))["nlm h 0.7"]},
        "nlm prefiltered": lambda z: {"nlm": nl_means(z, noise, hs=(0.7,), prefilter=1.0)["nlm prefiltered 1 h 0.7"]},
        # A band alone is no estimate of the plane: the light blur plus its shrunk detail is.
        "bands": lambda z: {
            "bands": convolve_separable(z, gaussian_kernel(0.75)) + shrunk_bands(z, noise)["band 0-0.75 shrunk"]
        },
        "neighbours": lambda z: {"neighbours": _shifted_sum(z, NEIGHBOURS)},
        "box": lambda z: {"box": _shifted_sum(z, BOX)},
    }


def _risk(out: np.ndarray, noisy: np.ndarray, variance: np.ndarray, d: float) -> float:
    return float(np.mean((out - noisy) ** 2) + 2 * d - np.mean(variance))


@pytest.fixture(scope="module")
def draws() -> dict[str, list[dict[str, float]]]:
    """Per family, per draw: the true error, the estimate and its biased variants."""
    clean = clean_plane()
    noise = NoiseEstimate(float(np.sqrt(np.mean(GAIN * clean + READ))), 0.0, GAIN, READ, 0.0)
    rng = np.random.default_rng(1)
    found: dict[str, list[dict[str, float]]] = {}
    for k in range(DRAWS):
        noisy = GAIN * rng.poisson(clean / GAIN) + rng.normal(0.0, np.sqrt(READ), clean.shape)
        variance = pixel_variance(noisy, noise, float(np.mean(noise.variance(noisy))))
        control = float(np.mean((noisy - clean) ** 2) - np.mean(variance))
        for name, family in families(noise).items():
            outputs = family(noisy)
            (out,) = outputs.values()
            (d,) = divergence(family, noisy, np.sqrt(variance), 0.0, outputs, seed=k).values()
            flat = np.full(noisy.shape, np.sqrt(variance.mean()))
            (plain,) = divergence(family, noisy, flat, 0.0, outputs, seed=k).values()
            correct = 0.0 if name == "noisy" else control
            found.setdefault(name, []).append(
                {
                    "true": float(np.mean((out - clean) ** 2)),
                    "estimate": _risk(out, noisy, variance, d) - correct,
                    "variance 20 % high": _risk(out, noisy, 1.2 * variance, 1.2 * d) - control,
                    "mean variance": _risk(out, noisy, variance, plain) - control,
                    "claimed independent": _risk(out, noisy, variance, 0.0) - control,
                }
            )
    return found


def ratio(draws, family: str, key: str) -> float:
    rows = draws[family]
    return float(np.mean([r[key] for r in rows]) / np.mean([r["true"] for r in rows]))


@pytest.mark.slow
@pytest.mark.parametrize("family", ["noisy", "blur 1", "nlm", "nlm prefiltered", "bands", "neighbours"])
def test_risk_estimate_is_unbiased_for_every_family(draws, family):
    assert abs(ratio(draws, family, "estimate") - 1) < 0.05


@pytest.mark.slow
@pytest.mark.parametrize(
    ("family", "biased"),
    [
        ("noisy", "variance 20 % high"),
        ("blur 1", "variance 20 % high"),
        ("nlm", "variance 20 % high"),
        ("nlm", "mean variance"),
        ("nlm prefiltered", "mean variance"),
        ("bands", "mean variance"),
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


def _nl_means_directly(plane: np.ndarray, noise: NoiseEstimate, strength: float, prefilter: float = 0.0) -> np.ndarray:
    """NL-means as written in the paper's terms: every offset of the window on its own (float64)."""
    from napari_mpid.core.auto.nonlinear import NLM_PATCH as p
    from napari_mpid.core.auto.nonlinear import NLM_SEARCH as s
    from napari_mpid.core.auto.nonlinear import stabilise

    guide = stabilise(plane, noise)
    expected = 2.0
    if prefilter > 0:
        kernel = gaussian_kernel(prefilter)
        guide = convolve_separable(guide, kernel)
        expected = 2.0 * float(np.sum(kernel**2)) ** 2  # white noise: what the blur passes, squared per axis
    z = np.pad(guide, s + p, mode="reflect")
    y = np.pad(plane, s, mode="reflect")
    h, w = plane.shape
    num, den = np.zeros((h, w)), np.zeros((h, w))
    box = np.ones(2 * p + 1) / (2 * p + 1)
    for dy in range(-s, s + 1):
        for dx in range(-s, s + 1):
            diff = (
                z[s : s + h + 2 * p, s : s + w + 2 * p] - z[s + dy : s + dy + h + 2 * p, s + dx : s + dx + w + 2 * p]
            ) ** 2
            dist = np.apply_along_axis(lambda r: np.convolve(r, box, "valid"), 1, diff)
            dist = np.apply_along_axis(lambda c: np.convolve(c, box, "valid"), 0, dist)
            weight = np.exp(-np.maximum(dist - expected, 0.0) / (strength**2 * expected / 2))
            num += weight * y[s + dy : s + dy + h, s + dx : s + dx + w]
            den += weight
    return num / den


@pytest.mark.parametrize("prefilter", [0.0, 1.0])
def test_nl_means_with_shared_pair_weights_equals_every_offset_on_its_own(prefilter):
    # The shipped loop computes each pair of opposite offsets once; borders included, it must
    # give what computing every offset separately gives.
    rng = np.random.default_rng(5)
    clean = clean_plane(40)
    noisy = GAIN * rng.poisson(clean / GAIN) + rng.normal(0.0, np.sqrt(READ), clean.shape)
    noise = NoiseEstimate(float(np.sqrt(np.mean(GAIN * clean + READ))), 0.0, GAIN, READ, 0.0)

    (shipped,) = nl_means(noisy, noise, hs=(0.7,), prefilter=prefilter).values()

    np.testing.assert_allclose(shipped, _nl_means_directly(noisy, noise, 0.7, prefilter), rtol=0, atol=1e-5)


@pytest.mark.parametrize("correlation", [0.0, 0.6])
def test_passed_variance_is_what_a_blur_leaves_of_the_models_noise(correlation):
    from napari_mpid.core.auto.nonlinear import _unit_field, passed_variance

    kernel = gaussian_kernel(1.0)
    field = _unit_field((384, 384), correlation, seed=3)

    measured = float(np.mean(convolve_separable(field, kernel)[8:-8, 8:-8] ** 2))

    assert passed_variance(kernel, correlation) == pytest.approx(measured, rel=0.04)


def test_candidates_follow_the_noise_kind_and_refuse_unknown_families():
    from napari_mpid.core.auto.nonlinear import candidates

    plane = clean_plane(48)[None] + np.random.default_rng(2).normal(0, 0.02, (1, 48, 48))
    white = NoiseEstimate(0.02, 0.0, 0.0, 4e-4, 0.0)
    correlated = NoiseEstimate(0.02, 0.6, 0.0, 4e-4, 0.0)

    on_white = candidates(plane, white, 4e-4)
    on_correlated = candidates(plane, correlated, 4e-4)

    assert {n.split()[0] for n in on_white} == {"nlm", "band"}
    assert any(n.startswith("nlm prefiltered") for n in on_correlated)
    assert {n.split()[0] for n in on_correlated} == {"nlm"}  # the bands' risk misleads under correlated noise
    assert all(c.shape == plane.shape and d > 0 for c, d in on_white.values())
    with pytest.raises(ValueError, match="unknown candidate families"):
        candidates(plane, white, 4e-4, ("wiener",))
