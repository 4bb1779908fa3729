"""The ``auto`` preset: filling settings, stopping and the final mix chosen per plane from the plane itself.

MPI's fixed settings suit strong, spatially correlated noise; on weak or
pixel-independent noise they lose to a well-chosen Gaussian blur
(docs/benchmarks.md). Here, without any clean image:

1. :func:`~napari_mpid.core.noise.estimate_noise` measures the plane's noise
   level and its lag-1 correlation.
2. :func:`choose_filling` sets the mask ratio from the correlation.
3. A small random set of pixels is held out of the filling (never shown to
   the network, never a training target). Their running average is then a
   J-invariant estimate (Batson & Royer, Noise2Self, 2019): its squared
   difference to the noisy image is the true error plus the noise variance,
   so :class:`EarlyStop` can stop the filling when it stops improving.
4. :func:`combine` mixes the noisy plane, its blurs and (for stacks) other
   planes by Stein's unbiased risk estimate over all pixels, then the
   filling with that mix and the noisy pixel on the held-out pixels,
   shrunk towards the first mix by the evidence for it.
Every choice and its reason is recorded in the run's notes.

Modules: :mod:`.policy` (mask ratio, whether the network runs),
:mod:`.stopping` (held-out pixels, early stopping), :mod:`.risk` (the SURE
mix), :mod:`.neighbours` and :mod:`.registration` (predictions from other
planes of a stack). This package exports what the engine calls.
"""

from napari_mpid.core.auto.neighbours import NEIGHBOUR_SIGMAS, REGISTER_MIN, neighbour_candidates
from napari_mpid.core.auto.policy import (
    CORRELATED,
    SIGNAL_DEPENDENT,
    choose_filling,
    network_decision,
    signal_dependent,
)
from napari_mpid.core.auto.risk import (
    COMBINE_SIGMAS,
    EVIDENCE,
    FAMILIES,
    FOLDS,
    VARYING,
    Combination,
    blur_slope,
    combine,
    family_of,
    mean_denoiser,
    plane_mix,
)
from napari_mpid.core.auto.stopping import HOLDOUT_FRACTION, EarlyStop

__all__ = [
    "COMBINE_SIGMAS",
    "CORRELATED",
    "EVIDENCE",
    "FAMILIES",
    "FOLDS",
    "HOLDOUT_FRACTION",
    "NEIGHBOUR_SIGMAS",
    "REGISTER_MIN",
    "SIGNAL_DEPENDENT",
    "VARYING",
    "Combination",
    "EarlyStop",
    "blur_slope",
    "choose_filling",
    "combine",
    "family_of",
    "mean_denoiser",
    "neighbour_candidates",
    "network_decision",
    "plane_mix",
    "signal_dependent",
]
