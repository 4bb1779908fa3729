"""Planes of a stack around a plane: which neighbours to use, and a device cache that finds duplicated frames.

A plane never appears as its own neighbour (stack ends are reflected), nor
does a copy of it: a duplicated frame (acquisition software that repeats a
frame it dropped, a file concatenated twice; FMD's WideField_BPAE_B captures
1 and 2) carries the plane's own noise. :meth:`PlaneCache.twin` finds such
copies and :func:`neighbours` skips them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch

from napari_mpid.core.noise import estimate_noise

__all__ = ["TWIN_SHARE", "PlaneCache", "neighbours"]

#: Two planes whose mean squared difference is below this share of one's noise variance are
#: taken for copies of one another (planes with independent noise differ by twice the variance
#: at least; the estimate can read high on textured planes, hence the margin: docs/constants.md).
TWIN_SHARE = 0.1


def neighbours(index: int, count: int, context: int, twin: Callable[[int, int], bool] | None = None) -> list[int]:
    """Indices of the ``context`` planes before and after plane ``index`` of ``count``.

    Order: the farthest before ... the nearest before, the nearest after ...
    the farthest after. Past an end the stack is reflected (index -1 is 1);
    a plane is never its own neighbour (in a 2-plane stack both sides see the
    other plane).

    ``twin(index, j)`` says whether plane j is a copy of plane ``index``
    (:meth:`PlaneCache.twin`). Copies are taken out of the stack before the
    neighbours are counted, among the planes within ``2 * context + 2`` of
    ``index`` (so only those are compared). Where every one of them is a
    copy, the plain neighbours are returned: a stack of one repeated plane
    has nothing to add.

    Raises
    ------
    ValueError
        If the stack has fewer than 2 planes.
    """
    if count < 2:
        raise ValueError("context filling needs at least 2 planes")
    if twin is not None:
        reach = 2 * context + 2
        window = range(max(0, index - reach), min(count, index + reach + 1))
        kept = [j for j in window if j == index or not twin(index, j)]
        if 1 < len(kept) < len(window):
            return [kept[j] for j in neighbours(kept.index(index), len(kept), context)]
    out = []
    for offset in [*range(-context, 0), *range(1, context + 1)]:
        j = index + offset
        period = 2 * (count - 1)
        j = j % period
        if j >= count:
            j = period - j
        if j == index:  # short stacks: fall back to the nearest other plane on that side
            j = index - 1 if (offset < 0 and index > 0) or index == count - 1 else index + 1
        out.append(j)
    return out


class PlaneCache:
    """Planes of one stack as tensors on the device, loaded on demand, least recently used dropped.

    Parameters
    ----------
    load : callable
        ``load(k)`` returns plane k as a ``(B, C, H, W)`` float32 tensor in
        [0, 1] on the device: the network's batch for that plane (B = 1, or
        the f*f sub-images of pixel-shuffle).
    count : int
        Planes in the stack.
    device : torch.device
    budget : int
        Bytes of planes kept at most (all of a small stack).
    """

    def __init__(self, load: Callable[[int], torch.Tensor], count: int, device: torch.device, budget: int) -> None:
        self.load = load
        self.count = count
        self.device = device
        self.budget = budget
        self._planes: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._twins: dict[tuple[int, int], bool] = {}
        self._levels: dict[int, float] = {}

    def __len__(self) -> int:
        return self.count

    def twin(self, i: int, j: int) -> bool:
        """Whether plane j repeats plane i, noise and all (a duplicated frame); cached.

        Planes with independent noise differ by at least twice its variance
        (more where the structure differs); a copy differs by nothing, or by
        its requantisation. Below :data:`TWIN_SHARE` of plane i's noise
        variance (:func:`~napari_mpid.core.noise.estimate_noise`, on its
        first sub-image and channel), the planes share their noise.
        """
        if i == j:
            return True
        key = (min(i, j), max(i, j))
        if key not in self._twins:
            if i not in self._levels:
                plane = self[i][0, 0].detach().float().cpu().numpy()
                self._levels[i] = estimate_noise(plane).sigma ** 2 if min(plane.shape) >= 32 else 0.0
            difference = float(((self[i] - self[j]) ** 2).mean())
            self._twins[key] = difference < TWIN_SHARE * self._levels[i]
        return self._twins[key]

    def __getitem__(self, k: int) -> torch.Tensor:
        if k in self._planes:
            self._planes.move_to_end(k)
            return self._planes[k]
        plane = self.load(k)
        self._planes[k] = plane
        self._bytes += plane.numel() * 4
        while self._bytes > self.budget and len(self._planes) > 1:
            _, dropped = self._planes.popitem(last=False)
            self._bytes -= dropped.numel() * 4
        return plane
