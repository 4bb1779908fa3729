"""Iterative filling (MPI, Sec. 3.2): zero-shot denoising of one image.

For an image x with values in [0, 1], starting from the pre-trained weights:

1. draw a Bernoulli keep-mask M_t that drops a fraction p of the pixels;
2. predict y_t = D([M_t * x, M_t]);
3. update the running average at the dropped pixels only,
   ybar <- beta * ybar + (1 - beta) * y_t (ybar starts as x);
4. take one Adam step on mean((y_t - x)^2 * (1 - M_t)).

The running average is updated with the prediction made *before* the
optimiser step of the same iteration, as in the authors' loop. BatchNorm stays
in training mode: the statistics of the image being denoised are used, which
the paper's ablation and our own measurements show matters (eval-mode
BatchNorm loses clearly on a CSet crop: docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from napari_mpid.core.fill.graphs import cuda_graphs_supported, run_steps
from napari_mpid.core.fill.optim import adam_for
from napari_mpid.core.fill.settings import FillSettings
from napari_mpid.core.masks import correlated_field, draw_keep_mask, injected_keep_mask
from napari_mpid.core.model.network import SkipNetwork, network_input, pointwise_conv

__all__ = [
    "IterativeFiller",
    "forward",
    "masked_loss",
    "update_running_average",
]


def masked_loss(prediction: torch.Tensor, target: torch.Tensor, keep_mask: torch.Tensor) -> torch.Tensor:
    """Mean over all elements of ``(prediction - target)^2 * (1 - keep_mask)``.

    Only dropped pixels contribute; dividing by all elements (not by the number
    of dropped pixels) matches the reference loop, whose Adam steps are tuned
    to that scale. ``keep_mask`` broadcasts over channels when it has one.
    """
    return ((prediction - target).square() * (1.0 - keep_mask)).mean()


@torch.no_grad()
def update_running_average(
    running_average: torch.Tensor, prediction: torch.Tensor, keep_mask: torch.Tensor, beta: float
) -> torch.Tensor:
    """``beta * ybar + (1 - beta) * y`` at the dropped pixels, ``ybar`` elsewhere (a new tensor)."""
    dropped = keep_mask.expand_as(running_average) == 0
    return torch.where(dropped, beta * running_average + (1.0 - beta) * prediction, running_average)


class IterativeFiller:
    """Runs MPI iterative filling on one batch of images that share weights.

    Parameters
    ----------
    network : SkipNetwork
        The network; its weights are overwritten with ``initial_state`` at the
        start of every :meth:`run` (every plane starts from pre-training).
    initial_state : dict
        Pre-trained state dict, already on the network's device.
    settings : FillSettings
        Mask ratio, beta, learning rate and how to compute (CUDA graphs are
        replayed by :func:`~napari_mpid.core.fill.graphs.run_steps`).
    """

    def __init__(self, network: SkipNetwork, initial_state: dict[str, torch.Tensor], settings: FillSettings) -> None:
        self.network = network
        self.initial_state = initial_state
        self.settings = settings
        self.running_average: torch.Tensor | None = None
        #: Held-out score per iteration (see :meth:`run`'s ``holdout``), else None.
        self.validation: torch.Tensor | None = None
        self._holdout: torch.Tensor | None = None
        self._image: torch.Tensor | None = None
        self._updates = 0

    def run(
        self,
        image: torch.Tensor,
        iterations: int,
        *,
        generator: torch.Generator | None = None,
        keep_masks: torch.Tensor | Callable[[int], torch.Tensor] | None = None,
        record: dict[str, Any] | None = None,
        holdout: torch.Tensor | None = None,
    ) -> Iterator[int]:
        """Fill ``image``, yielding the iteration number t = 1..T after each step.

        Parameters
        ----------
        image : torch.Tensor
            ``(B, C, H, W)`` on the network's device, values in [0, 1]; never
            modified.
        iterations : int
            T.
        generator : torch.Generator, optional
            Generator for the masks (on the image's device). Required unless
            ``keep_masks`` is given.
        keep_masks : tensor or callable, optional
            Injected masks for tests: a ``(T, B, K, H, W)`` tensor or a function
            of t (0-based) returning ``(B, K, H, W)``; 1 = visible.
        record : dict, optional
            If given, receives ``first_output`` and ``last_output`` (for tests).
        holdout : torch.Tensor, optional
            ``(B, K, H, W)``, 1 at held-out pixels: always hidden from the
            network and never a training target, so the running average there
            never depends on their own noisy values. :attr:`validation` then
            holds, for every iteration t, the mean squared difference between
            the running average and the image at those pixels: for noise that
            is independent between pixels, the true error plus the noise
            variance (Noise2Self's J-invariance), a stopping signal that needs
            no clean image.

        Notes
        -----
        The result is in :attr:`running_average` when the generator is exhausted.
        Closing the generator early stops after the current iteration.
        """
        net = self.network
        if self.settings.channels_last:
            # NHWC lets oneDNN (CPU) and cuDNN (GPU) pick their fastest kernels.
            net.to(memory_format=torch.channels_last)
        net.load_state_dict(self.initial_state)
        net.train()  # BatchNorm uses the statistics of this image (see module doc).
        b, _, h, w = image.shape
        mask_shape = (b, net.mask_channels, h, w)
        draw_shape = (b, 1, h, w) if self.settings.shared_mask else mask_shape
        if keep_masks is None and generator is None:
            raise ValueError("a generator is needed when keep_masks is not given")
        capture = (
            self.settings.cuda_graph
            and keep_masks is None
            and record is None
            and cuda_graphs_supported(image.device, [generator] if generator is not None else [])
        )
        optimizer = adam_for(net.parameters(), self.settings.learning_rate, image.device, capture)
        # Fixed buffers, updated in place: what a captured CUDA graph replays on.
        ybar = image.detach().clone()
        keep = torch.empty(mask_shape, device=image.device)
        self.running_average = ybar
        self.validation = torch.zeros(iterations, device=image.device) if holdout is not None else None
        # Held-out bookkeeping on the device (beta**t and the last score), so that an
        # iteration with held-out pixels can be captured as a CUDA graph too.
        self._decay = torch.ones((), device=image.device)
        score = torch.zeros((), device=image.device)
        if holdout is not None:
            visible = 1.0 - holdout.to(image.device, torch.float32)
            counted = holdout.to(image.device, image.dtype).expand_as(image)
            weight = 1.0 / counted.sum().clamp(min=1.0)
        self._holdout = holdout
        self._image = image
        self._updates = 0
        t = 0

        def step() -> None:
            nonlocal t
            if keep_masks is None:
                keep.copy_(draw_keep_mask(draw_shape, self.settings.mask_ratio, generator, image.device))
            else:
                keep.copy_(injected_keep_mask(keep_masks, t, image.device))
            if holdout is not None:
                keep.mul_(visible)
            prediction = self._forward(network_input(image, keep))
            with torch.no_grad():
                ybar.copy_(update_running_average(ybar, prediction, keep, self.settings.beta))
                if holdout is not None:
                    self._decay.mul_(self.settings.beta)
                    corrected = self._corrected(ybar, self._decay)
                    score.copy_(((corrected - image).square() * counted).sum() * weight)
            if record is not None:
                if t == 0:
                    record["first_output"] = prediction.detach().clone()
                if t == iterations - 1:
                    record["last_output"] = prediction.detach().clone()
            loss = masked_loss(prediction, image, keep if holdout is None else keep + (1.0 - visible))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            t += 1

        for done in run_steps(step, iterations, capture=capture, generators=[generator] if capture else []):
            if holdout is not None:  # outside the captured graph: the step's index changes
                self._updates = done
                self.validation[done - 1].copy_(score)
            yield done

    def _corrected(self, ybar: torch.Tensor, decay: torch.Tensor) -> torch.Tensor:
        corrected = (ybar - decay * self._image) / (1.0 - decay)
        return torch.where(self._holdout.expand_as(ybar) > 0, corrected, ybar)

    def held_out_average(self) -> torch.Tensor:
        """The running average with the noisy image's remaining share removed at held-out pixels.

        Held-out pixels are hidden at every iteration, so after t updates the
        average there is ``beta**t * x + (1 - beta) * sum(beta**(t-k) y_k)``;
        dividing the predictions' part by ``1 - beta**t`` (as Adam corrects
        its moments) leaves a weighted mean of predictions only.
        """
        ybar = self.running_average
        if self._holdout is None or self._updates == 0:
            return ybar
        return self._corrected(ybar, self._decay)

    @torch.no_grad()
    def probe_slope(
        self, image: torch.Tensor, correlation: float, amplitude: float, generator: torch.Generator, passes: int = 4
    ) -> float:
        """How much the prediction at held-out pixels follows their correlated noise (after :meth:`run`).

        A Monte-Carlo divergence (Ramani et al. 2008) against correlated
        noise: with the current weights and a random mask that keeps the
        held-out pixels hidden, the input is perturbed by a small field
        ``delta`` with the noise's autocorrelation
        (:func:`~napari_mpid.core.masks.correlated_field`); any change of the
        held-out predictions then comes from neighbours whose noise is
        correlated with theirs. Returns ``mean(change * delta) /
        mean(delta^2)`` over the held-out pixels, the slope that
        :func:`~napari_mpid.core.auto.combine` needs.
        """
        net, holdout = self.network, self._holdout
        b, _, h, w = image.shape
        counted = holdout.to(image.dtype).expand_as(image)
        shape = (b, 1 if self.settings.shared_mask else net.mask_channels, h, w)
        slopes = []
        for _ in range(passes):
            keep = draw_keep_mask(shape, self.settings.mask_ratio, generator, image.device)
            keep = keep.expand(b, net.mask_channels, h, w) * (1.0 - holdout)
            delta = correlated_field(tuple(image.shape), correlation, generator, image.device) * amplitude
            before = self._forward(network_input(image, keep))
            after = self._forward(network_input(image + delta, keep))
            den = float((delta * delta * counted).sum())
            slopes.append(float(((after - before) * delta * counted).sum()) / den if den > 0 else 0.0)
        return sum(slopes) / len(slopes)

    def _forward(self, net_input: torch.Tensor) -> torch.Tensor:
        return forward(self.network, net_input, self.settings.precision, self.settings.channels_last)


def forward(network: SkipNetwork, net_input: torch.Tensor, precision: str, channels_last: bool) -> torch.Tensor:
    """The network's prediction for ``net_input`` in the given arithmetic and memory layout.

    Parameters
    ----------
    network : SkipNetwork
    net_input : torch.Tensor
        ``(B, C + K [+ extra], H, W)``, see :func:`~napari_mpid.core.model.network.network_input`.
    precision : str
        "float32" or "bfloat16".
    channels_last : bool
        Run in NHWC (the network must have been converted).

    Returns
    -------
    torch.Tensor
        ``(B, C, H, W)`` float32, values in (0, 1).
    """
    if channels_last:
        net_input = net_input.contiguous(memory_format=torch.channels_last)
    if precision == "bfloat16":
        # Convolutions in bf16 (AVX-512 BF16 / AMX on CPU, tensor cores on
        # GPU); weights, Adam state, loss and running average stay float32.
        # The 1x1 head and sigmoid run in float32 so that the predictions
        # that enter the running average are not rounded to bf16.
        with torch.autocast(net_input.device.type, dtype=torch.bfloat16, cache_enabled=False):
            features = network.encoder_decoder(net_input)
        return torch.sigmoid(pointwise_conv(features.float(), network.head))
    if channels_last:
        return torch.sigmoid(pointwise_conv(network.encoder_decoder(net_input), network.head))
    return network(net_input)
