"""Where NL-means spends its time, one CPU thread: the window means by ``avg_pool2d`` and by sums of slices.

Not a test: the figures behind "faster window sums" in docs/benchmarks.md.
Times, on a 512x512 plane (FMDD's Confocal_FISH_1), the window mean of one
offset's squared differences both ways (the shipped loop does it once per
offset of the 15x15 window) and one whole :func:`nl_means` call as shipped.

    python benchmarks/nlm_speed.py
"""

from __future__ import annotations

import time

import torch
from _common import eval_dir, read_unit

from napari_mpid.core.auto.nonlinear import NLM_PATCH, _box_mean, nl_means
from napari_mpid.core.noise import estimate_noise


def per_call(function, repeats: int) -> float:
    """Seconds per call after one warm-up call."""
    function()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def main() -> int:
    torch.set_num_threads(1)
    plane = read_unit(eval_dir("fmd_test_mix") / "raw" / "Confocal_FISH_1.png")
    noise = estimate_noise(plane)
    size = 2 * NLM_PATCH + 1
    squared = torch.rand(plane.shape[0] + size - 1, plane.shape[1] + size - 1)
    pool = per_call(lambda: torch.nn.functional.avg_pool2d(squared[None, None], size, stride=1), 50)
    sums = per_call(lambda: _box_mean(squared, size), 50)
    same = torch.allclose(
        torch.nn.functional.avg_pool2d(squared[None, None], size, stride=1)[0, 0], _box_mean(squared, size), atol=1e-6
    )
    print(
        f"window means of one offset: avg_pool2d {pool * 1e3:.2f} ms, sums of slices {sums * 1e3:.2f} ms (equal: {same})"
    )
    print(f"nl_means as shipped, one call: {per_call(lambda: nl_means(plane, noise), 3):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
