"""A camera's noise measured once from repeated exposures, and applied to the planes it takes.

One noisy plane holds its noise and its signal in the same pixels: where the
signal is strong (at low spatial frequencies, in bright textured regions) the
noise cannot be read off it. Two exposures of one unchanging field, taken
with the settings of the data to denoise, can: their difference holds the
noise of both and no signal. This is how cameras are characterised (the
photon-transfer curve) and what single-image estimates cannot reach on
strongly correlated noise, much of whose power lies at the low frequencies
where the signal is (docs/benchmarks.md, "Repeated exposures: the noise
model a calibration gives").

:func:`measure_profile` measures from such exposures what the auto preset's mix
needs (:mod:`napari_mpid.core.auto.risk`):

- the noise-level line ``variance = gain * intensity + offset`` in the
  data's own units (Poisson-Gaussian noise: shot noise grows with the
  signal, read noise does not), fitted to the pairs' differences binned by
  intensity, and
- the noise's autocorrelation out to the widest blur of the mix, which sets
  how much of the noise each blur keeps (its slope in Stein's risk).

A :class:`NoiseProfile` is saved as JSON and given to a run
(``FillParams.noise_profile``); every plane's noise then comes from it
instead of :func:`~napari_mpid.core.noise.estimate_noise`, mapped through
the plane's intensity scale (:meth:`NoiseProfile.for_plane`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_mpid.core.errors import InputError
from napari_mpid.core.filters import convolve_separable, gaussian_kernel
from napari_mpid.core.noise import NoiseEstimate

__all__ = ["FORMAT", "REACH", "NoiseProfile", "autocorrelation", "load_profile", "measure_profile", "profile_notes"]

#: The ``format`` key of a saved profile: what :func:`load_profile` accepts.
FORMAT = "napari-mpid noise profile 1"
#: Lags of the stored autocorrelation along each axis: the reach of the mix's widest blur
#: (sigma 3, cut at 4 sigma: :func:`~napari_mpid.core.filters.gaussian_kernel`).
REACH = 12
#: Intensity bins of the noise-level line: equal pixel counts, by rank of the sorting intensity.
LINE_BINS = 16
#: Blur (sigma, pixels) of a lone pair's mean before it sorts pixels into the line's bins
#: (with three or more exposures the others' mean sorts, unblurred).
PAIR_SORT_SIGMA = 3.0
#: Lag-1 correlation from which a profile of two exposures is cautioned about: its line's
#: slope reads low, the more so the more correlated the noise (figures: docs/constants.md).
TWO_FRAMES_CORRELATION = 0.2
#: Blur (sigma, pixels) of a plane whose intensities set its noise level from the profile's line
#: (the local intensity of the mix's intensity-following weights is blurred as much).
LEVEL_SIGMA = 2.0
#: Smallest side of a calibration frame: the autocorrelation needs some room past its reach.
MIN_SIDE = 32
#: Pairs' difference variances that differ by more than this ratio are reported: the field
#: changed between exposures (motion, focus, bleaching that is not uniform), which reads as noise.
PAIR_SPREAD = 1.3


def autocorrelation(residual: np.ndarray, radius: int) -> np.ndarray:
    """The ``(2 radius + 1)^2`` autocorrelation of ``residual`` around lag 0 (1 there), unbiased per lag.

    By FFT with zero padding (no wrap-around); each lag's sum is divided by
    the number of pixel pairs it holds.
    """
    h, w = residual.shape
    r = np.asarray(residual, dtype=np.float64) - float(np.mean(residual))
    power = np.abs(np.fft.rfft2(r, (2 * h, 2 * w))) ** 2
    full = np.fft.fftshift(np.fft.irfft2(power, (2 * h, 2 * w)))
    window = full[h - radius : h + radius + 1, w - radius : w + radius + 1]
    lags = np.arange(-radius, radius + 1)
    window = window / np.outer(h - np.abs(lags), w - np.abs(lags))
    return window / window[radius, radius]


@dataclass(frozen=True)
class NoiseProfile:
    """A camera's noise at one setting, measured by :func:`measure_profile`.

    Attributes
    ----------
    gain, offset : float
        The noise-level line ``variance = gain * intensity + offset``, in the
        calibration data's units.
    floor : float
        The least variance the profile gives: the line at the darkest pixel
        where the line stays positive there, else the smallest variance
        measured in any intensity bin (a line that crosses zero).
    autocorrelation : ndarray
        ``(2 REACH + 1, 2 REACH + 1)``, 1 at the centre.
    frames, pairs : int
        Exposures and pairs of them the profile was measured on.
    low, high : float
        The intensity range the line was fitted over.
    dtype : str
        The calibration data's type (its units are the data's).
    pair_variances : tuple of float
        Each pair's difference variance per exposure, in the data's units.
    """

    gain: float
    offset: float
    floor: float
    autocorrelation: np.ndarray
    frames: int
    pairs: int
    low: float
    high: float
    dtype: str
    pair_variances: tuple[float, ...] = ()

    @property
    def correlation(self) -> float:
        """The lag-1 correlation, mean of the horizontal and vertical ones (as :class:`NoiseEstimate`'s)."""
        a, c = self.autocorrelation, self.autocorrelation.shape[0] // 2
        return float((a[c, c + 1] + a[c + 1, c] + a[c, c - 1] + a[c - 1, c]) / 4)

    def variance(self, intensity):
        """Noise variance at ``intensity`` (data units): the line, at least :attr:`floor`."""
        return np.maximum(self.gain * np.asarray(intensity, dtype=np.float64) + self.offset, self.floor)

    def changed_field(self) -> bool:
        """Whether the pairs' variances differ by more than :data:`PAIR_SPREAD` (the field changed)."""
        v = self.pair_variances
        return len(v) > 1 and min(v) > 0 and max(v) / min(v) > PAIR_SPREAD

    def cautions(self) -> list[str]:
        """What may make this profile wrong, in words (empty when nothing does)."""
        out = []
        if self.changed_field():
            spread = max(self.pair_variances) / min(self.pair_variances)
            out.append(
                f"the exposures' differences vary by {spread:.2f}x from pair to pair: the field may have moved "
                "or bleached between them, which reads as noise"
            )
        if self.frames == 2 and self.correlation >= TWO_FRAMES_CORRELATION:
            out.append(
                f"two exposures of correlated noise (lag-1 {self.correlation:.2f}) sort their own noise into the "
                "line's intensity bins and read its slope low; three or more exposures give an unbiased line"
            )
        return out

    def for_plane(self, plane: np.ndarray, low: float, high: float) -> NoiseEstimate:
        """The noise of ``plane``, scaled by ``(x - low) / (high - low)`` from the data's units.

        The line maps with the scale: a scaled pixel ``s`` was ``low + span s``
        in data units, whose variance divided by ``span^2`` is the scaled
        variance.

        The mix reads a pixel's variance off the line at its noisy value,
        floored; where noise takes dark pixels below the floor's reach the
        floor lifts them, and the plane's level comes out high on a dark,
        read-noise background (docs/constants.md, ``LEVEL_SIGMA``). The level is
        the line over the plane blurred by :data:`LEVEL_SIGMA`, where noise
        hardly moves a pixel; the line's shape is kept and scaled to it.
        ``sigma`` is the root of that level.
        """
        span = float(high - low)
        if span <= 0:
            raise ValueError(f"the intensity scale's span must be positive, got {low}..{high}")
        gain = self.gain / span
        offset = (self.gain * low + self.offset) / span**2
        floor = self.floor / span**2
        data = np.asarray(plane, dtype=np.float64)
        kernel = gaussian_kernel(LEVEL_SIGMA)
        smooth = np.stack([convolve_separable(c, kernel) for c in data.reshape(-1, *data.shape[-2:])])
        level = float(np.mean(np.maximum(gain * smooth + offset, floor)))
        noisy = float(np.mean(np.maximum(gain * data + offset, floor)))
        k = level / noisy if noisy > 0 else 1.0
        return NoiseEstimate(
            float(np.sqrt(level)),
            self.correlation,
            gain * k,
            offset * k,
            floor * k,
            autocorrelation=self.autocorrelation,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (:func:`load_profile` reads it back)."""
        return {
            "format": FORMAT,
            "gain": self.gain,
            "offset": self.offset,
            "floor": self.floor,
            "low": self.low,
            "high": self.high,
            "dtype": self.dtype,
            "frames": self.frames,
            "pairs": self.pairs,
            "pair_variances": list(self.pair_variances),
            "autocorrelation": np.round(self.autocorrelation, 6).tolist(),
        }

    def save(self, path: str | Path) -> Path:
        """Write the profile as JSON to ``path`` and return it."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    def describe(self) -> str:
        """One line for logs and the widget: the line, the lag-1 correlation and the data it came from."""
        return (
            f"noise variance {self.gain:.4g} x intensity {self.offset:+.4g} (at least {self.floor:.4g}), "
            f"lag-1 correlation {self.correlation:.2f}; {self.frames} {self.dtype} exposures, "
            f"intensities {self.low:.4g}..{self.high:.4g}"
        )


def profile_notes(profile: NoiseProfile, path: str | Path, dtype: Any) -> list[str]:
    """What a run with ``profile`` (read from ``path``) on data of ``dtype`` records in its notes."""
    notes = [f"noise from the profile {path}: {profile.describe()}"]
    if np.dtype(dtype) != np.dtype(profile.dtype):
        notes.append(
            f"the noise profile was measured on {profile.dtype} data and this image is {np.dtype(dtype)}: "
            "its line holds only if both are in the same units"
        )
    return notes


def load_profile(path: str | Path) -> NoiseProfile:
    """Read a profile written by :meth:`NoiseProfile.save`.

    Raises
    ------
    InputError
        The file is missing, is not JSON, or is not a noise profile of this format.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"noise profile {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"noise profile {path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{path} is not a napari-mpid noise profile (expected format {FORMAT!r})")
    try:
        acf = np.asarray(data["autocorrelation"], dtype=np.float64)
        profile = NoiseProfile(
            float(data["gain"]),
            float(data["offset"]),
            float(data["floor"]),
            acf,
            int(data["frames"]),
            int(data["pairs"]),
            float(data["low"]),
            float(data["high"]),
            str(data["dtype"]),
            tuple(float(v) for v in data.get("pair_variances", ())),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"noise profile {path} lacks or mangles a field: {exc}") from None
    side = acf.shape[0] if acf.ndim == 2 else 0
    if acf.ndim != 2 or acf.shape[0] != acf.shape[1] or side % 2 == 0 or abs(acf[side // 2, side // 2] - 1) > 1e-6:
        raise InputError(f"noise profile {path}: the autocorrelation must be square, odd-sided and 1 at its centre")
    if not np.all(np.isfinite(acf)) or not np.isfinite([profile.gain, profile.offset, profile.floor]).all():
        raise InputError(f"noise profile {path} holds non-finite values")
    if profile.floor <= 0:
        raise InputError(f"noise profile {path}: the variance floor must be positive, got {profile.floor}")
    return profile


def _bins(sorting: np.ndarray) -> list[np.ndarray]:
    """:data:`LINE_BINS` masks of equal pixel counts, by rank of ``sorting``.

    By rank, not by quantile edges: 8-bit data tie on a few values, and
    edges between ties leave some bins empty and lump others over a wide
    range of intensities, which biased the line (docs/constants.md).
    """
    which = np.empty(sorting.size, dtype=np.intp)
    which[np.argsort(sorting, kind="stable")] = np.arange(sorting.size) * LINE_BINS // sorting.size
    return [which == k for k in range(LINE_BINS)]


def _floor(gain: float, offset: float, darkest: float, quietest: float, largest: float) -> float:
    """The least variance a profile gives: where the line stays positive, the line at the darkest pixel.

    A floor only guards against a line that crosses zero inside the data
    (read noise below a black level, clipped dark pixels): then the
    quietest bin's variance. Where the line stays positive it must not be
    overridden: the quietest bin's mean lies above the darkest pixels, and
    its variance above theirs (docs/constants.md). ``largest``: the data's
    largest magnitude, which scales the least positive variance allowed.
    """
    # Noise takes some pixels below zero where the signal is nil; the line is asked at zero there.
    at_darkest = gain * max(darkest, 0.0) + offset
    tiny = 1e-12 * max(largest, 1.0) ** 2
    return max(min(at_darkest, quietest) if at_darkest > 0 else quietest, tiny)


def _pairs(count: int) -> list[tuple[int, int]]:
    # Every pair of a few exposures; consecutive ones of many (their number grows as count^2).
    if count <= 8:
        return [(i, j) for i in range(count) for j in range(i + 1, count)]
    return [(i, i + 1) for i in range(count - 1)]


def measure_profile(frames: np.ndarray, reach: int = REACH) -> NoiseProfile:
    """Measure a camera's noise from repeated exposures of one unchanging field.

    Parameters
    ----------
    frames : array-like, ``(N, Y, X)``
        N >= 2 exposures of the same field with the settings of the data the
        profile is for (exposure, gain, binning, averaging), in the data's
        units; a bead slide, a fixed sample or a uniform field all work, as
        long as nothing moves or bleaches unevenly between them. Not
        modified.
    reach : int
        Lags of the autocorrelation along each axis.

    Returns
    -------
    NoiseProfile

    Raises
    ------
    InputError
        Fewer than two exposures, a frame smaller than :data:`MIN_SIDE`
        (or than the reach allows), non-finite values, or exposures without
        noise between them (identical frames).

    Notes
    -----
    Each pair ``(a, b)`` is matched in brightness first (``g = mean(a) /
    mean(b)``: illumination flickers between exposures) and differenced:
    ``d = a - g b`` holds ``1 + g^2`` times one exposure's noise variance.
    The line is fitted, weighted by pixel counts, to the variance of ``d``
    over :data:`LINE_BINS` intensity bins against the pair's mean intensity
    there; the bins are quantiles of the other exposures' mean, whose noise
    is independent of the pair's (of the pair's own mean, blurred by
    :data:`PAIR_SORT_SIGMA`, when there are only two). The autocorrelation
    is the mean over pairs of ``d``'s.

    Three or more exposures give an unbiased line. Two read its slope low
    under correlated noise, where their own noise sorts the bins
    (docs/constants.md).
    """
    data = np.asarray(frames)
    if data.ndim != 3 or data.shape[0] < 2:
        raise InputError(f"calibration needs at least two exposures of one field as (N, Y, X), got shape {data.shape}")
    if min(data.shape[1:]) < max(MIN_SIDE, 2 * reach + 1):
        raise InputError(
            f"calibration frames must be at least {max(MIN_SIDE, 2 * reach + 1)} pixels on each side, "
            f"got {data.shape[1]}x{data.shape[2]}"
        )
    stack = data.astype(np.float64)
    if not np.all(np.isfinite(stack)):
        raise InputError("calibration frames hold NaN or infinite values")
    levels, variances, counts, acfs, pair_variances = [], [], [], [], []
    for i, j in _pairs(len(stack)):
        a, b = stack[i], stack[j]
        g = float(a.mean() / b.mean()) if b.mean() != 0 else 1.0
        d = a - g * b
        share = 1.0 + g * g
        total = float(d.var())
        if total <= 0:
            raise InputError(f"exposures {i} and {j} are identical: a calibration needs independent noise")
        pair_variances.append(total / share)
        acfs.append(autocorrelation(d, reach))
        m = ((a + g * b) / 2).ravel()
        flat = d.ravel()
        # Bins sort pixels by intensity, and a noisy sorting sorts the noise too: the bins' mean
        # intensities spread outwards and the line flattens. The other exposures' mean sorts with
        # noise independent of this pair's, so the pair's mean over a bin is its true intensity;
        # two exposures have only their own mean, blurred to quieten it (docs/constants.md).
        rest = [k for k in range(len(stack)) if k not in (i, j)]
        if rest:
            sorting = stack[rest].mean(axis=0)
        else:
            sorting = convolve_separable((a + g * b) / 2, gaussian_kernel(PAIR_SORT_SIGMA))
        # Every bin holds at least 64 pixels: frames are at least 32x32 (MIN_SIDE), cut in 16.
        for inside in _bins(sorting.ravel()):
            levels.append(float(m[inside].mean()))
            variances.append(float(flat[inside].var()) / share)
            counts.append(int(inside.sum()))
    x, y, w = np.array(levels), np.array(variances), np.sqrt(np.array(counts, dtype=np.float64))
    if np.ptp(x) > 0:
        design = np.stack([x, np.ones_like(x)], axis=1) * w[:, None]
        gain, offset = np.linalg.lstsq(design, y * w, rcond=None)[0]
    else:  # a uniform field: one level, no slope to fit
        gain, offset = 0.0, float(np.average(y, weights=w))
    return NoiseProfile(
        float(gain),
        float(offset),
        _floor(float(gain), float(offset), float(stack.min()), float(y.min()), float(np.abs(stack).max())),
        np.mean(acfs, axis=0),
        len(stack),
        len(acfs),
        float(stack.min()),
        float(stack.max()),
        str(data.dtype),
        tuple(pair_variances),
    )
