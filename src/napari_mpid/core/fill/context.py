"""Context filling: one network per stack that sees each plane's neighbours.

Microscopists' planes come in stacks: neighbouring Z planes or time points
show the same structures with independent noise. Here the network gets,
besides the masked plane and its mask, the ``context`` planes on each side
along the stack axis, unmasked, as extra input channels (in the spirit of
SUPPORT, Eom et al. 2023): only the plane being denoised is masked, and since
the noise of different planes is independent, the target pixel's own noise
can never reach its prediction.

- The extra channels' first-layer weights start at zero
  (:func:`~napari_mpid.core.model.network.with_extra_inputs`), so before any
  fine-tuning the network is exactly the pre-trained plane model; the
  fine-tuning learns how much to trust the neighbours (nothing, when they
  show something else).
- One network is fine-tuned for the whole stack, on random planes (and
  crops of large planes) of it: the work grows with the fit's steps, not
  with the number of planes.
- Each plane is then predicted with several random masks; a pixel's
  estimate is the mean of the predictions made while it was hidden.
- Stack ends are reflected (the neighbour before plane 0 is plane 1): a
  plane never appears as its own neighbour, which would leak its noise.
- Nor does a copy of it: a duplicated frame (acquisition software that
  repeats a frame it dropped, a file concatenated twice; FMD's
  WideField_BPAE_B captures 1 and 2) carries the plane's own noise, and a
  network that sees it unmasked learns to copy it. :meth:`PlaneCache.twin`
  finds such copies and :func:`neighbours` skips them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from napari_mpid.core.fill.optim import adam_for
from napari_mpid.core.fill.settings import FillSettings
from napari_mpid.core.fill.single import forward, masked_loss
from napari_mpid.core.masks import correlated_field, draw_keep_mask
from napari_mpid.core.model.network import SkipNetwork, with_extra_inputs
from napari_mpid.core.run.stack import PlaneCache, neighbours

__all__ = ["ContextFiller"]


class ContextFiller:
    """Fine-tunes one network with neighbour planes on a whole stack, then predicts its planes.

    Parameters
    ----------
    network : SkipNetwork
        The pre-trained plane network (gives the architecture; not changed).
    initial_state : dict
        Its pre-trained weights.
    context : int
        Neighbour planes on each side.
    settings : FillSettings
        Mask ratio, learning rate, precision, channels_last and shared_mask as
        for :class:`~napari_mpid.core.fill.single.IterativeFiller` (the mask
        hides pixels of the plane being denoised only; beta is not used).
    crop_size : int
        Side of the training crops (whole planes when they are smaller).
    passes : int
        Random masks per plane at prediction (each hides ``mask_ratio`` of the pixels).
    """

    def __init__(
        self,
        network: SkipNetwork,
        initial_state: dict[str, torch.Tensor],
        context: int,
        settings: FillSettings,
        *,
        crop_size: int = 256,
        passes: int = 8,
    ) -> None:
        c = network.channels
        self.context = context
        self.network = SkipNetwork(
            c, network.multi_channel_mask, network.width, network.scales, extra_inputs=2 * context * c
        ).to(next(network.parameters()).device)
        self.initial_state = with_extra_inputs(initial_state, 2 * context * c)
        self.settings = settings
        self.crop_size = crop_size
        self.passes = passes
        if settings.channels_last:
            self.network.to(memory_format=torch.channels_last)

    def _inputs(self, planes: PlaneCache, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Plane k ``(B, C, H, W)`` and its neighbours ``(B, 2*context*C, H, W)``."""
        center = planes[k]
        around = torch.cat([planes[j] for j in neighbours(k, len(planes), self.context, planes.twin)], dim=1)
        return center, around

    def _predict(self, center: torch.Tensor, around: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        keep = keep.expand(keep.shape[0], self.network.mask_channels, *keep.shape[2:])
        net_input = torch.cat([center * keep, keep.to(center.dtype), around], dim=1)
        return forward(self.network, net_input, self.settings.precision, self.settings.channels_last)

    def fit(
        self,
        planes: PlaneCache,
        steps: int,
        generator: torch.Generator,
        holdout: Callable[[int], torch.Tensor] | None = None,
    ) -> Iterator[int]:
        """Fine-tune on random planes (random crops of large ones) of the stack; yield t = 1..steps.

        ``generator`` (on the planes' device) draws planes, crops, flips and
        masks, so a fit is reproducible from its seed. ``holdout(k)`` gives
        plane k's held-out pixels ``(B, 1, H, W)`` (1 = held out): hidden
        whenever plane k is the one being denoised and never a target, so
        that its prediction there stays independent of their noise.
        """
        net = self.network
        net.load_state_dict(self.initial_state)
        net.train()  # BatchNorm uses the statistics of the data being denoised, as in MPI
        device = planes[0].device
        optimizer = adam_for(net.parameters(), self.settings.learning_rate, device, capturable=False)
        b, _, h, w = planes[0].shape
        ch, cw = min(self.crop_size, h), min(self.crop_size, w)
        k_mask = 1 if self.settings.shared_mask else net.mask_channels
        for t in range(steps):
            draw = torch.randint(0, 2**31 - 1, (4,), generator=generator, device=device).tolist()
            k = draw[0] % len(planes)
            top, left = draw[1] % (h - ch + 1), draw[2] % (w - cw + 1)
            center, around = self._inputs(planes, k)
            window = (slice(None), slice(None), slice(top, top + ch), slice(left, left + cw))
            center, around = center[window], around[window]
            held = holdout(k)[window] if holdout is not None else None
            if draw[3] & 1:  # flips: more variety from few planes, same statistics
                center, around = center.flip(-1), around.flip(-1)
                held = held.flip(-1) if held is not None else None
            if draw[3] & 2:
                center, around = center.flip(-2), around.flip(-2)
                held = held.flip(-2) if held is not None else None
            keep = draw_keep_mask((b, k_mask, ch, cw), self.settings.mask_ratio, generator, device)
            if held is not None:
                keep = keep * (1.0 - held)
            prediction = self._predict(center, around, keep)
            loss = masked_loss(prediction, center, keep if held is None else keep + held)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            yield t + 1

    @torch.no_grad()
    def predict(
        self, planes: PlaneCache, k: int, generator: torch.Generator, region=None, holdout: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Plane k (or its ``region``, a pair of slices) denoised: ``(B, C, H, W)`` in [0, 1].

        Every pixel's value is the mean of the predictions made in the passes
        that hid it; a last pass hides any pixel that no random mask hid.
        ``holdout`` (``(B, 1, H, W)`` of the region) is hidden in every pass.
        """
        center, around = self._inputs(planes, k)
        if region is not None:
            center, around = center[(slice(None), slice(None), *region)], around[(slice(None), slice(None), *region)]
        b, _, h, w = center.shape
        total = torch.zeros_like(center)
        hidden = torch.zeros_like(center)
        k_mask = 1 if self.settings.shared_mask else self.network.mask_channels
        for _ in range(self.passes):
            keep = draw_keep_mask((b, k_mask, h, w), self.settings.mask_ratio, generator, center.device)
            if holdout is not None:
                keep = keep * (1.0 - holdout)
            dropped = (1.0 - keep).expand_as(center)
            total += self._predict(center, around, keep) * dropped
            hidden += dropped
        if (hidden == 0).any():
            keep = (hidden[:, :k_mask] > 0).to(torch.float32)
            dropped = (1.0 - keep).expand_as(center)
            total += self._predict(center, around, keep) * dropped
            hidden += dropped
        return total / hidden.clamp(min=1.0)

    def probe_slope(
        self,
        planes: PlaneCache,
        k: int,
        correlation: float,
        amplitude: float,
        generator: torch.Generator,
        holdout: torch.Tensor,
        region=None,
        passes: int = 4,
    ) -> float:
        """How much the prediction of plane k at its held-out pixels follows their own correlated noise.

        The neighbour planes' noise is independent of plane k's, but under
        spatially correlated noise the visible pixels of plane k around a
        hidden one carry part of its noise, so the prediction is no longer
        J-invariant. As :meth:`~napari_mpid.core.fill.single.IterativeFiller.probe_slope`
        measures for the plane filler: plane k (only) is perturbed by a field
        ``delta`` with the noise's autocorrelation, the held-out pixels stay
        hidden, and the slope is ``mean(change * delta) / mean(delta^2)``
        over them. ``holdout`` and ``region`` as in :meth:`predict`.
        """
        center, around = self._inputs(planes, k)
        if region is not None:
            center, around = center[(slice(None), slice(None), *region)], around[(slice(None), slice(None), *region)]
        b, _, h, w = center.shape
        counted = holdout.to(center.dtype).expand_as(center)
        den_total, num_total = 0.0, 0.0
        k_mask = 1 if self.settings.shared_mask else self.network.mask_channels
        for _ in range(passes):
            keep = draw_keep_mask((b, k_mask, h, w), self.settings.mask_ratio, generator, center.device) * (
                1.0 - holdout
            )
            delta = correlated_field(tuple(center.shape), correlation, generator, center.device) * amplitude
            with torch.no_grad():
                before = self._predict(center, around, keep)
                after = self._predict(center + delta, around, keep)
            num_total += float(((after - before) * delta * counted).sum())
            den_total += float((delta * delta * counted).sum())
        return num_total / den_total if den_total > 0 else 0.0
