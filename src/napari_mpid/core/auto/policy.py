"""What the auto preset decides from a plane's noise before any filling: the mask ratio, whether the network runs."""

from __future__ import annotations

import numpy as np

from napari_mpid.core.noise import NoiseEstimate, estimate_noise_channels

__all__ = ["CORRELATED", "SIGNAL_DEPENDENT", "choose_filling", "network_decision", "signal_dependent"]

#: Noise with a lag-1 correlation at or above this is treated as spatially correlated: camera
#: noise that reaches the neighbours lies above it, pixel-independent noise below (the values
#: measured, and what chose it: docs/constants.md).
CORRELATED = 0.45
#: Least ratio of the noise variance at the 90th and 10th percentile of a plane's pixels
#: (from the noise-level line) for the weights to follow the intensity (:func:`signal_dependent`;
#: provenance and margins: docs/constants.md).
SIGNAL_DEPENDENT = 2.0


def choose_filling(noise: NoiseEstimate, model_ratio: float) -> tuple[dict[str, float], str]:
    """Filling settings for a plane with this noise; returns (FillParams changes, reason).

    Spatially correlated noise (lag-1 correlation >= :data:`CORRELATED`) keeps the model's
    own mask ratio (the paper's 85 % for real camera noise): dropped pixels
    must not see their correlated neighbours. Otherwise the noise is close to
    pixel-independent and a lower ratio shows the network more of the plane.
    """
    if noise.correlation >= CORRELATED:
        return {"mask_ratio": model_ratio}, f"correlated noise (lag-1 {noise.correlation:.2f}): mask {model_ratio:.2f}"
    ratio = min(model_ratio, 0.5)
    return {"mask_ratio": ratio}, f"nearly independent noise (lag-1 {noise.correlation:.2f}): mask {ratio:.2f}"


def network_decision(part: np.ndarray, noise: NoiseEstimate | None = None) -> tuple[bool, str]:
    """Whether the network is worth running on a plane, from its noise alone; returns (run it, why).

    The final mix (:func:`combine`) weighs the network's filling against
    blurs of the plane, the noisy pixel and other planes of a stack, so the
    network only pays for its run time where it earns weight there. Two
    kinds of noise decide it before the costly part:

    - Spatially correlated noise (lag-1 correlation >= :data:`CORRELATED`,
      wide-field cameras) and pixel-independent noise whose level follows
      the signal (:func:`signal_dependent`: Poisson-Gaussian shot noise, the
      fluorescence confocal and two-photon case): on such planes the mix of
      blurs and neighbour means is a near-optimal linear filter of smooth
      structure, and the filling gets weight close to zero.
    - Noise of one level everywhere (read-noise-limited cameras, or
      Gaussian noise added by software) on textured content: blurs remove
      little noise without removing structure, and the filling earns most
      of the weight.

    docs/benchmarks.md ("The network's value and cost") lists what the
    network adds per benchmark family under both kinds of noise. ``part``
    is ``(C, H, W)`` in [0, 1]; ``noise`` is its estimate when already known.
    """
    part = np.asarray(part)
    if noise is None:
        noise = estimate_noise_channels(part)
    if noise.correlation >= CORRELATED:
        return False, f"spatially correlated noise (lag-1 {noise.correlation:.2f}): mix without the network"
    if signal_dependent(np.asarray(noise.variance(part.reshape(-1)))):
        return False, "noise that grows with the signal (shot noise): mix without the network"
    return True, "noise of one level over the plane: network filling joins the mix"


def signal_dependent(pixel_variance: np.ndarray) -> bool:
    """Whether the noise-level line makes the noise variance differ enough across a plane to act on.

    The ratio of its 90th to its 10th percentile over the pixels must reach
    :data:`SIGNAL_DEPENDENT`: shot noise lies well above it and noise of one
    level on smooth content close to 1, where a small spurious slope of the
    line would mislead the intensity-dependent weights. Texture can give
    the line such a slope under noise of one level (docs/constants.md has
    the spreads measured on both sides).
    """
    low = float(np.percentile(pixel_variance, 10))
    return low > 0 and float(np.percentile(pixel_variance, 90)) >= SIGNAL_DEPENDENT * low
