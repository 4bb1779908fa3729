"""Filling one part of a plane: tiles, pixel shuffle, and the auto preset's hold-out, stopping and mix."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from napari_mpid.core.auto import (
    CORRELATED,
    HOLDOUT_FRACTION,
    Combination,
    EarlyStop,
    choose_filling,
    combine,
    network_decision,
)
from napari_mpid.core.fill.settings import FillSettings
from napari_mpid.core.fill.shuffle import pixel_shuffle_merge, pixel_shuffle_split
from napari_mpid.core.fill.single import IterativeFiller
from napari_mpid.core.fill.stacked import StackedFiller
from napari_mpid.core.model.checkpoints import LoadedModel
from napari_mpid.core.noise import NoiseEstimate, estimate_noise_channels
from napari_mpid.core.noise_profile import NoiseProfile
from napari_mpid.core.params import FillParams
from napari_mpid.core.run.devices import resolve_precision
from napari_mpid.core.run.normalization import IntensityScale
from napari_mpid.core.run.plan import Plan, plane_seed
from napari_mpid.core.run.scales import channel_of

__all__ = [
    "ABANDON_AT",
    "ABANDON_EVIDENCE",
    "HOLDOUT_TILE",
    "PlaneFiller",
    "held_out_pixels",
    "record_choice",
    "wants_network",
]

#: ``tile`` argument of :func:`plane_seed` for the held-out pixels of the auto preset (never a tile).
HOLDOUT_TILE = 999_983
#: The auto preset asks, this share of the way through each tile's filling, whether the
#: filling so far earns anything in the mix; where it earns nothing the network stops
#: there (the tile keeps its filling as it stands), and a part where no tile earned
#: anything gets the mix alone (:meth:`PlaneFiller.filling_earns`; where the value came
#: from: docs/constants.md).
ABANDON_AT = 0.5
#: The evidence (in standard errors, as :data:`~napari_mpid.core.auto.EVIDENCE`) a filling
#: needs part of the way to be kept: 0, any positive gain (docs/constants.md).
ABANDON_EVIDENCE = 0.0
#: A noise profile whose variance on a plane differs from the plane's own estimate by more
#: than this factor either way is reported: calibrated at other settings, or other units.
#: Wide on purpose: the estimate itself reads high on weakly noisy textured planes, where a
#: right profile then differs from it (docs/constants.md).
PROFILE_MISMATCH = 3.0


def held_out_pixels(seed: int, number: int, shape: tuple[int, int], part: int = 0) -> np.ndarray:
    """The auto preset's held-out pixels of plane ``number`` (colour part ``part``): a boolean map ``shape``."""
    generator = torch.Generator().manual_seed(plane_seed(seed, number, part, HOLDOUT_TILE))
    return (torch.rand(shape, generator=generator) < HOLDOUT_FRACTION).numpy()


def wants_network(params: FillParams, part: np.ndarray, noise: NoiseEstimate) -> tuple[bool, str]:
    """Whether an auto-preset run fills this part with the network (see :attr:`FillParams.network_use`)."""
    use = params.network_use
    if use == "never":
        return False, "network off (iterations 0)" if params.iterations == 0 else "network off (network 'never')"
    if use == "always":
        return True, "network on (network 'always')"
    return network_decision(part, noise)


def record_choice(choice: dict[str, Any], how: Combination, network: str | None) -> dict[str, Any]:
    """``choice`` completed with how the final mix came out (weights, shares of each family, estimated error)."""
    # A filling left out as a copy of the plane's noise (combine's rejected) has no weight at all.
    choice["blend_weight"] = round(how.weights.get(network, 0.0), 3) if network else 0.0
    choice["blend"] = how.describe()
    choice["shares"] = {k: round(v, 4) for k, v in how.shares().items()}
    choice["estimated_error"] = round(max(how.held_out_error, 0.0), 8)
    return choice


class PlaneFiller:
    """Fills one part ``(C, H, W)`` in [0, 1] of a plane: tiles, pixel-shuffle, the filler."""

    def __init__(self, model: LoadedModel, plan: Plan, device: torch.device) -> None:
        self.model = model
        self.plan = plan
        self.params = p = plan.params
        self.device = device
        self.precision = resolve_precision(p.precision, device)
        #: The plan's settings; a part's filler gets them with its own mask sharing and,
        #: for the auto preset, the mask ratio its noise asks for (:meth:`fill`).
        self.settings = FillSettings(
            mask_ratio=p.mask_ratio,
            learning_rate=p.learning_rate,
            beta=p.beta,
            precision=self.precision,
            channels_last=self.precision == "bfloat16" or device.type == "cuda",
            cuda_graph=p.cuda_graphs == "auto",
        )
        #: The filler of the part being filled (previews read its running average).
        self.filler: IterativeFiller | None = None
        #: The plane as filled so far, (C, H, W) in [0, 1], for previews.
        self.canvas: np.ndarray | None = None
        #: What the auto preset chose for every plane and part (JSON-friendly dicts).
        self.choices: list[dict[str, Any]] = []
        #: Messages for the run's result (a noise profile that does not fit the data).
        self.warnings: list[str] = []
        self._live: tuple[Any, Any] | None = None  # (tile slices, running-average getter)
        self._profile: tuple[NoiseProfile, dict[int, IntensityScale]] | None = None
        self._profile_checked: set[int] = set()  # planes whose own estimate was compared with the profile

    def use_profile(self, profile: NoiseProfile, scales: dict[int, IntensityScale]) -> None:
        """Take every plane's noise from ``profile`` (data units), through the run's intensity ``scales``."""
        self._profile = (profile, scales)

    def noise_of(self, part: np.ndarray, number: int, members: float = 1) -> NoiseEstimate:
        """The noise of ``part`` (``(C, H, W)``, scaled) of plane ``number``; ``members``: exposures it averages.

        From the noise profile where the run has one (the first plane whose
        own estimate differs from it by more than :data:`PROFILE_MISMATCH`
        either way adds a warning), else estimated from the part itself
        (:func:`~napari_mpid.core.noise.estimate_noise_channels`; a mean of
        exposures is measured as it is).
        """
        if self._profile is None:
            return estimate_noise_channels(part)
        profile, scales = self._profile
        scale = scales[channel_of(self.plan, self.plan.planes[number])]
        noise = profile.for_plane(part, scale.low, scale.high)
        if members > 1:
            noise = noise.averaged(members)
        if number not in self._profile_checked and not any(w.startswith("noise profile") for w in self.warnings):
            self._profile_checked.add(number)
            own = estimate_noise_channels(part).sigma ** 2
            ratio = noise.sigma**2 / own if own > 0 else 1.0
            if not 1 / PROFILE_MISMATCH <= ratio <= PROFILE_MISMATCH:
                self.warnings.append(
                    f"noise profile: on plane {number} it predicts {ratio:.2g}x the noise variance the plane "
                    "itself shows; was it calibrated with these settings (exposure, gain, averaging) and in "
                    "these units?"
                )
        return noise

    def fill(
        self, part: np.ndarray, number: int, part_no: int, members: float = 1
    ) -> Generator[tuple[int, int], None, np.ndarray]:
        """Yield (tile, iteration) and return the filled part (C, H, W) in [0, 1].

        ``members``: the independent exposures ``part`` averages (a static scene's mean; copies of one
        frame count as one, weighted by how often they repeat), for its noise (:meth:`noise_of`).

        With ``adaptive`` parameters (the auto preset) the mask ratio comes
        from the part's noise, a few pixels are held out to stop the filling
        when it no longer improves, and the result is blended with the best
        Gaussian blur (see :mod:`napari_mpid.core.auto`); the choices are
        appended to :attr:`choices`.
        """
        p, tiles, weights = self.params, self.plan.tiles, self.plan.weights
        settings = self.settings.replace(shared_mask=self.gray_in_colour_network(part))
        self.canvas = part.astype(np.float32, copy=True)
        out = np.zeros_like(part) if len(tiles) > 1 else None
        held, slopes, check_at = None, [], 0
        if p.adaptive:
            noise = self.noise_of(part, number, members)
            changes, why = choose_filling(noise, p.mask_ratio)
            settings = settings.replace(mask_ratio=changes["mask_ratio"])
            held = held_out_pixels(p.seed, number, part.shape[1:], part_no)
            network, network_why = wants_network(p, part, noise)
            choice = {"plane": number, "part": part_no, "noise_sigma": round(noise.sigma, 5),
                      "noise_correlation": round(noise.correlation, 3), "mask_ratio": changes["mask_ratio"],
                      "reason": why, "network": network, "network_reason": network_why,
                      "stopped_at": []}  # fmt: skip
            if not network:
                out, how = combine(part, {}, held, noise)
                self.choices.append(record_choice(choice, how, None))
                return out
            # A network the user asked for ("always") runs to the end; ABANDON_AT 0 checks nothing.
            if p.network_use == "auto" and ABANDON_AT > 0:
                check_at = max(1, round(ABANDON_AT * p.iterations))
        self.filler = IterativeFiller(self.model.network, self.model.state, settings)
        abandoned: list[int] = []  # the iteration each abandoned tile stopped at
        for k, tile in enumerate(tiles):
            piece = part[(slice(None), *tile.slices)]
            gen = torch.Generator(self.device).manual_seed(plane_seed(p.seed, number, part_no, k))
            self._live = (tile.slices, lambda: self.filler.running_average)
            holdout = self.holdout_batch(held[tile.slices]) if held is not None else None
            stopper, best = (EarlyStop(), None) if held is not None else (None, None)
            dropped = False
            steps = self.filler.run(self.to_batch(piece), p.iterations, generator=gen, holdout=holdout)
            for t in steps:
                yield k + 1, t
                if stopper is not None:
                    improved, stop = stopper.update(self.filler.validation[:t].float().cpu().numpy())
                    if improved:
                        best = self.filler.held_out_average().clone()
                    if stop:
                        steps.close()
                        break
                if t == check_at:
                    interim = best if best is not None else self.filler.held_out_average()
                    if not self.filling_earns(piece, interim, held[tile.slices], noise, number, part_no, k):
                        # The tile keeps its filling as it stands; the final mix weighs the part's.
                        steps.close()
                        best, dropped = interim, True
                        abandoned.append(t)
                        break
            average = best if best is not None else self.filler.held_out_average()
            if stopper is not None:
                choice["stopped_at"].append(check_at if dropped else stopper.stopped_at or p.iterations)
                if noise.correlation >= CORRELATED and not dropped:
                    probe = torch.Generator(self.device).manual_seed(plane_seed(p.seed, number, part_no, k) + 1)
                    slopes.append(self.filler.probe_slope(self.to_batch(piece), noise.correlation, noise.sigma, probe))
            result = self.from_batch(average, *piece.shape)
            self._live = None
            self.canvas[(slice(None), *tile.slices)] = result
            if out is None:
                out = result
            else:
                out[(slice(None), *tile.slices)] += result * weights[k]
        if held is not None and abandoned and len(abandoned) == len(tiles):
            # Nowhere did the filling earn anything: the part gets the mix alone.
            choice["abandoned_at"], choice["stopped_at"] = max(abandoned), []
            out, how = combine(part, {}, held, noise)
            self.choices.append(record_choice(choice, how, None))
            return out
        if held is not None:
            if abandoned:
                choice["tiles_abandoned"] = len(abandoned)
            slope = float(np.mean(slopes)) if slopes else 0.0
            out, how = combine(part, {"filling": (out, slope)}, held, noise)
            if slopes:
                choice["filled_slope"] = round(slope, 4)
            self.choices.append(record_choice(choice, how, "filling"))
        return out

    def filling_earns(
        self,
        piece: np.ndarray,
        interim: torch.Tensor,
        held: np.ndarray,
        noise: NoiseEstimate,
        number: int,
        part_no: int,
        tile: int = 0,
    ) -> bool:
        """Whether the filling of ``piece`` as it stands gets weight in the mix on its held-out pixels.

        The same test the final mix makes (:func:`~napari_mpid.core.auto.combine`'s
        cross-fitted gain over the plane's own mix), with the evidence
        :data:`ABANDON_EVIDENCE` instead of its shrinkage: on the sets measured
        no filling whose gain was not even positive halfway gained later
        (docs/benchmarks.md, "Abandoning a filling that earns nothing"), while
        the rest of the run is most of the network's time. ``tile`` seeds the
        slope's probe under correlated noise.
        """
        filled = self.from_batch(interim, *piece.shape)
        slope = 0.0
        if noise.correlation >= CORRELATED:
            seed = plane_seed(self.params.seed, number, part_no, tile) + 2
            probe = torch.Generator(self.device).manual_seed(seed)
            slope = self.filler.probe_slope(self.to_batch(piece), noise.correlation, noise.sigma, probe)
        _, how = combine(piece, {"filling": (filled, slope)}, held, noise, evidence=ABANDON_EVIDENCE)
        return how.held_out_used and how.weights.get("filling", 0.0) > 0

    def gray_in_colour_network(self, part: np.ndarray) -> bool:
        """A gray part enters a 3-channel network as three equal channels: its masks must be shared."""
        return part.shape[0] == 1 and self.model.network.channels == 3

    def holdout_batch(self, held: np.ndarray) -> torch.Tensor:
        """A held-out pixel map (H, W) in the network's batch layout ``(f*f, K, H/f, W/f)``."""
        f = self.params.pd_factor
        h, w = held.shape
        x = torch.from_numpy(held.astype(np.float32)).to(self.device)[None, None]
        ph, pw = (-h) % f, (-w) % f
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        x = pixel_shuffle_split(x, f)
        k = self.model.network.mask_channels
        return x.expand(x.shape[0], k, *x.shape[2:]).contiguous() if k > 1 else x

    def preview(self) -> np.ndarray:
        """The part as it stands: finished tiles, the current tile's running average, the input elsewhere."""
        canvas = self.canvas.copy()
        if self._live is not None:
            slices, average = self._live
            c, h, w = canvas[(slice(None), *slices)].shape
            canvas[(slice(None), *slices)] = self.from_batch(average(), c, h, w)
        return canvas

    def to_batch(self, part: np.ndarray) -> torch.Tensor:
        """``(C, H, W)`` in [0, 1] -> the network's batch ``(f*f, C', H/f, W/f)`` on the device."""
        f = self.params.pd_factor
        c, h, w = part.shape
        x = torch.from_numpy(np.ascontiguousarray(part, dtype=np.float32)).to(self.device)[None]
        if self.model.network.channels == 3 and c == 1:
            x = x.expand(1, 3, h, w).contiguous()  # the paper feeds gray as 3 equal channels
        ph, pw = (-h) % f, (-w) % f
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        return pixel_shuffle_split(x, f)

    def from_batch(self, ybar: torch.Tensor, c: int, h: int, w: int) -> np.ndarray:
        """Inverse of :meth:`to_batch` for a running average: back to ``(c, H, W)``."""
        out = pixel_shuffle_merge(ybar, self.params.pd_factor)[0, :, :h, :w]
        if out.shape[0] != c:
            out = out.mean(dim=0, keepdim=True)
        # A copy: the filler keeps updating its buffer in place (previews).
        return out.detach().float().cpu().numpy().copy()

    def fill_stack(self, parts: list[np.ndarray], numbers: list[int]) -> Generator[int, None, list[np.ndarray]]:
        """Fill same-sized single-tile planes together (stack mode); yield t, return the planes."""
        p = self.params
        c, h, w = parts[0].shape
        batch = torch.stack([self.to_batch(part) for part in parts])
        gens = [torch.Generator(self.device).manual_seed(plane_seed(p.seed, n)) for n in numbers]
        shared = self.gray_in_colour_network(parts[0])
        stacked = StackedFiller(self.model.network, self.model.state, self.settings.replace(shared_mask=shared))
        self.canvas = parts[0].astype(np.float32, copy=True)
        self._live = ((slice(None), slice(None)), lambda: stacked.running_average[0])
        yield from stacked.run(batch, p.iterations, generators=gens)
        self._live = None
        return [self.from_batch(ybar, c, h, w) for ybar in stacked.running_average]
