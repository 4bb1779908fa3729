"""The options' help says what the validation accepts."""

from __future__ import annotations

import pytest

from napari_mpid.cli import main


def test_mask_ratio_help_states_the_range_that_is_accepted(capsys):
    """The help said 0 < p < 1 while only 0.01-0.99 was accepted."""
    from napari_mpid.core.params import FillParams, ParameterError

    with pytest.raises(SystemExit):
        main(["denoise", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    option = help_text[help_text.rindex("--mask-ratio MASK_RATIO") :][:200]  # its entry, after the usage line

    assert "0.01 to 0.99" in option and "0 < p < 1" not in option
    for accepted in (0.01, 0.99):
        assert FillParams(mask_ratio=accepted).mask_ratio == accepted
    for refused in (0.005, 0.995):
        with pytest.raises(ParameterError, match=r"mask_ratio must be in \[0.01, 0.99\]"):
            FillParams(mask_ratio=refused)
