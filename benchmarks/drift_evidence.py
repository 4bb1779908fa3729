"""What the shifts measured between FMD exposures are worth: the evidence behind ``DRIFT_EVIDENCE``.

Not a test: a measurement for docs/constants.md. For the FMD series of
benchmarks/stacks.py (``static``: the 4 captures of a configuration as they
are; ``drift``: frame k moved by (1.5k, 1.0k) px), every exposure's shift
onto the first is measured on the noisy frames
(:func:`~napari_mpid.core.auto.registration.estimate_shift`) and, where it
reaches ``REGISTER_MIN``, the ratio that
:func:`~napari_mpid.core.engine.modes.exposure_shift` compares with
``DRIFT_EVIDENCE``: the blurred mismatch to the first frame after the move
over the mismatch in place. One line per series; ``-`` where the shift is
below ``REGISTER_MIN``. Numpy only, a few seconds::

    python benchmarks/drift_evidence.py
"""

from __future__ import annotations

import numpy as np
from stacks import load

from napari_mpid.core.auto import REGISTER_MIN
from napari_mpid.core.auto.registration import estimate_shift, shift_plane
from napari_mpid.core.engine.modes import drift_mismatch


def main() -> int:
    for dataset in ("static", "drift"):
        for item in load(dataset):
            frames = item["noisy"].astype(np.float64)
            shown = []
            for k in range(1, len(frames)):
                shift = estimate_shift(frames[0], frames[k])
                if max(abs(shift[0]), abs(shift[1])) < REGISTER_MIN:
                    shown.append("-")
                    continue
                still, moved = drift_mismatch(frames[0], [frames[k], shift_plane(frames[k], shift)])
                ratio = moved / still
                shown.append(f"({shift[0]:+.2f}, {shift[1]:+.2f}) {ratio:.2f}")
            print(f"{dataset:6s} {item['name']:18s} " + "  ".join(shown), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
