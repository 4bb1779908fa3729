"""The Python API's progress bar: it ends at 100 % whatever the filling did."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mpid import denoise, preset


@pytest.mark.parametrize("context", [0, 1])
def test_progress_bar_ends_at_100_percent_with_early_stopping_and_context(context, capsys):
    # Context filling fits once per stack and the auto preset may stop early: a bar
    # counting planes x iterations stopped at a third of the way in the demo.
    stack = np.random.default_rng(0).poisson(50, (3, 48, 48)).astype(np.uint16)
    params = preset("auto", iterations=3, model="random-init:1:single", device="cpu", context=context)
    result = denoise(stack, params, axes="ZYX", progress=True)

    assert result.denoised.shape == stack.shape
    err = capsys.readouterr().err
    assert "100/100%" in err


def test_a_noise_profile_takes_exposures_along_any_axis_but_not_channels():
    from napari_mpid.api import InputError, measure_noise_profile

    rng = np.random.default_rng(1)
    field = np.broadcast_to(np.linspace(30.0, 300.0, 64), (64, 64))
    tyx = rng.poisson(field, (3, 64, 64)).astype(np.uint16)
    first = measure_noise_profile(tyx, axes="TYX")
    moved = measure_noise_profile(np.moveaxis(tyx, 0, -1), axes="YXT")
    assert moved.gain == first.gain and moved.offset == first.offset
    with pytest.raises(InputError, match="one channel at a time"):
        measure_noise_profile(tyx[None], axes="CTYX")
