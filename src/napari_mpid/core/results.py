"""What a run reports while it works (:class:`Progress`) and when it is done (:class:`DenoiseResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from napari_mpid.core.auto.risk import FAMILIES
from napari_mpid.core.params import FillParams
from napari_mpid.core.version import __version__

__all__ = ["DenoiseResult", "Progress"]


@dataclass(frozen=True)
class Progress:
    """Where a denoising run stands.

    Attributes
    ----------
    plane, planes : int
        1-based position of the plane being filled within this run, and how
        many planes the run fills.
    iteration, iterations : int
        Filling iteration t of T within the current plane, part and tile.
    tile, tiles : int
        1-based tile index within the plane, and tiles per plane.
    elapsed : float
        Seconds since the run started.
    preview : ndarray or None
        Current state of this plane (Y, X[, S]) in input units: finished
        tiles and colour parts, the running average of the one being filled
        and the input elsewhere. Only every ``preview_every`` iterations when
        asked for.
    group : int
        Planes filled together in stack mode (``plane`` is the first of them).
    part, parts : int
        Colour part being filled (an RGB plane with a 1-channel model is
        filled as 3 parts), and parts per plane.
    number : int
        0-based number of the (first) current plane in the whole stack.
    event : str
        "iteration" after a filling step; "plane" once the plane(s) have been
        written to the outputs.
    stage : str
        "fill" (every plane filled alone, the paper's method), or for context
        filling "fit" (fine-tuning the stack's network: ``iteration`` of
        ``iterations`` steps) and "predict" (``plane`` being predicted).
    done, total : float
        Work done and in all, in arbitrary units, when the stages are not
        alike (context filling); 0 otherwise.
    """

    plane: int
    planes: int
    iteration: int
    iterations: int
    tile: int = 1
    tiles: int = 1
    elapsed: float = 0.0
    preview: np.ndarray | None = None
    group: int = 1
    part: int = 1
    parts: int = 1
    number: int = 0
    event: str = "iteration"
    stage: str = "fill"
    done: float = 0.0
    total: float = 0.0

    @property
    def fraction(self) -> float:
        """Fraction of the whole run done, in [0, 1]."""
        if self.total:
            return min(1.0, self.done / self.total)
        per_tile = max(self.iterations, 1)  # iterations 0: the auto preset's mix alone
        per_part = self.tiles * per_tile
        per_plane = self.parts * per_part
        step = per_tile if self.event == "plane" else self.iteration  # a finished plane counts whole
        within = (self.part - 1) * per_part + (self.tile - 1) * per_tile + step
        done = (self.plane - 1) * per_plane + self.group * within
        return done / (self.planes * per_plane)

    @property
    def eta(self) -> float | None:
        """Estimated seconds left, None before any work was measured."""
        f = self.fraction
        return self.elapsed * (1 - f) / f if f > 0 else None


@dataclass
class DenoiseResult:
    """Outputs of a run, with everything needed to reproduce it.

    Attributes
    ----------
    denoised, noise_map : array-like
        Same shape as the input, float32, in the input's intensity units
        (``noise_map = input - denoised``; None when not asked for). numpy
        arrays unless other outputs were passed to :func:`denoise_planes`.
    params : FillParams
        The parameters as used (mask ratio and stack size resolved).
    notes : list of str
        What was chosen automatically, and why.
    fitted : dict
        Context filling: the fitted network's weights per series (pass them
        back as ``fitted=`` to predict more planes of the same stacks).
    choices : list of dict
        The auto preset's choices per plane and colour part (noise, mask
        ratio, stopping iteration, blend) and why.
    """

    denoised: Any
    noise_map: Any
    params: FillParams
    axes: str
    model: str
    model_sha256: str
    device: str
    seconds: float
    precision: str = "float32"
    scales: list[tuple[float, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    planes: int = 0
    fitted: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)
    choices: list[dict[str, Any]] = field(default_factory=list)

    def produced_by(self) -> dict[str, float]:
        """Percent of the result each family produced (network, neighbour planes, blurs, noisy pixel).

        The mean over planes and parts of the final mix's shares
        (:meth:`~napari_mpid.core.auto.Combination.shares`); the paper's
        presets are the network's filling alone.
        """
        if not self.choices:
            return {family: (100.0 if family == "network" else 0.0) for family in FAMILIES}
        return {
            family: round(100 * float(np.mean([c.get("shares", {}).get(family, 0.0) for c in self.choices])), 1)
            for family in FAMILIES
        }

    def summary(self) -> str:
        """What was done, in plain words: planes, time, device, what produced the result, noise before and after.

        The first sentence carries what produced the result (the widget's
        status line shows it alone), e.g. "Denoised 8 planes in 3 s on cpu
        without the network: blurs 80 %, neighbour planes 19 %, noisy pixel 1 %."
        """
        count = f"{self.planes} plane{'s' if self.planes != 1 else ''}"
        text = f"Denoised {count} in {self.seconds:.0f} s on {self.device}"
        shares = self.produced_by()
        # Largest share first; the families' own order breaks ties.
        ranked = sorted(shares.items(), key=lambda item: -item[1])
        made = ", ".join(f"{k} {_percent(v)}" for k, v in ranked if v > 0)
        if not self.choices:
            return f"{text} with the paper's iterative filling: {made}."
        ran = sum(1 for c in self.choices if c.get("network", True) and "abandoned_at" not in c)
        tried = _tried(self.choices)
        if ran == 0:
            text += " without the network"
            if tried:
                text += f" (tried on {tried}, abandoned: it earned nothing)"
        else:
            where = "every plane" if ran == len(self.choices) else f"{ran} of {len(self.choices)} planes"
            text += f" with the network on {where}"
            if tried:
                text += f" (abandoned on {tried} more: it earned nothing)"
            if shares["network"] == 0:
                made = f"network 0 %, {made}"
        text += f": {made}."
        before = float(np.sqrt(np.mean([c["noise_sigma"] ** 2 for c in self.choices])))
        after = float(np.sqrt(np.mean([c.get("estimated_error", 0.0) for c in self.choices])))
        if before > 0:
            text += f" Estimated noise {100 * before:.2g} % of the intensity range before, {100 * after:.2g} % after"
            # An estimated error of 0 (a flat plane's mix) has no ratio worth printing.
            text += f" ({20 * np.log10(before / after):.1f} dB less)." if after > 1e-3 * before else "."
        return text

    def metadata(self) -> dict[str, Any]:
        """Flat, JSON-friendly record of the run (for layer metadata and TIFF tags)."""
        return {
            "software": f"napari-mpid {__version__}",
            **{f"param_{k}": v for k, v in self.params.to_dict().items()},
            "axes": self.axes,
            "model": self.model,
            "model_sha256": self.model_sha256,
            "device": self.device,
            "precision": self.precision,
            "seconds": round(self.seconds, 2),
            "planes": self.planes,
            "intensity_scales": [list(s) for s in self.scales],
            "summary": self.summary(),
            "produced_by": self.produced_by(),
            "notes": list(self.notes) + _summarize(self.choices),
            "warnings": list(self.warnings),
            **({"auto_choices": list(self.choices)} if self.choices else {}),
        }


def _tried(choices: list[dict[str, Any]]) -> str:
    """Where the network was tried and abandoned, in words: "2 planes", "1 stack" (one network per stack), or ""."""
    abandoned = [c for c in choices if "abandoned_at" in c]
    stacks = {c["stack"] for c in abandoned if "stack" in c}
    count, unit = (len(stacks), "stack") if stacks else (len(abandoned), "plane")
    return f"{count} {unit}{'s' if count != 1 else ''}" if abandoned else ""


def _summarize(choices: list[dict[str, Any]]) -> list[str]:
    """One note per auto-preset run: the noise, where the network ran and what the mix used, over all planes."""
    if not choices:
        return []
    ran = [c for c in choices if c.get("network", True) and "abandoned_at" not in c]
    abandoned = [c["abandoned_at"] for c in choices if "abandoned_at" in c]
    sigmas = [c["noise_sigma"] for c in choices]
    text = f"auto: {len(choices)} plane(s)/part(s); noise {min(sigmas):.3g}-{max(sigmas):.3g} (RMS, scaled units)"
    text += f"; network on {len(ran)} of {len(choices)}"
    if abandoned:
        text += f", tried and abandoned on {_tried(choices)} at iteration {max(abandoned)} (it earned nothing)"
    if ran:
        stops = [t for c in ran for t in c["stopped_at"]]
        ratios = sorted({c["mask_ratio"] for c in ran})
        text += f" (mask ratio {', '.join(f'{r:.2f}' for r in ratios)}"
        text += f", stopped at iterations {min(stops)}-{max(stops)})" if stops else ")"
    reasons = sorted({c["network_reason"] for c in choices if "network_reason" in c})
    if reasons:
        text += f" [{'; '.join(reasons)}]"
    return [text + " (per plane in auto_choices)"]


def _percent(value: float) -> str:
    return f"{value:.0f} %" if value >= 1 or value == 0 else "<1 %"
