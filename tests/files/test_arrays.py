"""Array-likes under the outputs: stored layouts that transpose and fold our axes (numpy only)."""

from __future__ import annotations

import numpy as np

from napari_mpid.files.arrays import Layout, LayoutArray


def test_layout_array_reads_and_writes_planes_of_a_folded_transposed_store():
    ours = np.arange(2 * 3 * 4 * 5 * 3).reshape(2, 3, 4, 5, 3).astype(np.float32)  # axes "CQYXS"
    layout = Layout("CQYXS", ours.shape, (1, 0, 4, 2, 3), (1, 2, 1, 1), "QCYX")  # stored (q, c*s, y, x)
    stored = np.zeros(layout.stored_shape, np.float32)
    view = LayoutArray(stored, layout)

    for c in range(2):
        for q in range(3):
            view[c, q] = ours[c, q]

    np.testing.assert_array_equal(stored, layout.to_stored(ours))
    np.testing.assert_array_equal(view[1, 2], ours[1, 2])
    np.testing.assert_array_equal(np.asarray(view), ours)
    np.testing.assert_array_equal(layout.to_ours(stored), ours)
