"""The dock's layout: it fits a 1280x800 window, its texts wrap instead of being clipped, groups in order."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from qtpy.QtCore import QPoint
from qtpy.QtWidgets import QLabel

from napari_mpid._qt import widget as widget_module

from .conftest import TEST_MODEL, run_to_end

#: The longest file name a microscope is likely to give a layer.
LONG_NAME = "2024-05-17_HeLa_LifeAct-GFP_63x_oil_widefield_sample3_position12_zstack_deconvolution-input"
#: The dock may take at most this much of the window's width.
MAX_DOCK_WIDTH = 420


@pytest.fixture
def docked(make_napari_viewer, qtbot):
    """A shown 1280x800 viewer with an 8-plane z-stack of a long name and the widget docked."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    stack = np.random.default_rng(0).poisson(500, (8, 64, 64)).astype(np.uint16)
    viewer.add_image(stack, name=LONG_NAME, axis_labels=("z", "y", "x"))
    _, widget = viewer.window.add_plugin_dock_widget("napari-mpid", "Zero-shot denoise")
    widget.controls["model"].value = TEST_MODEL
    widget.controls["iterations"].value = 2
    widget.controls["device"].value = "cpu"
    qtbot.wait(50)  # let the window lay itself out
    return viewer, widget


def clipped_labels(widget) -> list[str]:
    """Texts of the visible labels that do not fit: too narrow (single line) or too short (wrapped)."""
    clipped = []
    for label in widget.native.findChildren(QLabel):
        if not label.isVisible() or not label.text():
            continue
        if label.wordWrap():
            fits = label.heightForWidth(label.width()) <= label.height()
        else:
            fits = label.sizeHint().width() <= label.width()
        if not fits:
            clipped.append(label.text())
    return clipped


def top(widget, control) -> int:
    """Where a control starts, in pixels from the top of the widget."""
    return control.native.mapTo(widget.native, QPoint(0, 0)).y()


@pytest.mark.parametrize("advanced", [False, True], ids=["collapsed", "advanced shown"])
def test_dock_fits_a_1280x800_window_and_leaves_the_canvas_most_of_it(docked, qtbot, advanced):
    viewer, widget = docked
    widget.show_advanced.value = advanced
    qtbot.wait(50)
    dock = widget.native.parent()
    canvas = viewer.window._qt_viewer.canvas.native

    assert viewer.window._qt_window.width() == 1280
    assert widget.native.minimumSizeHint().width() <= MAX_DOCK_WIDTH
    assert widget.native.sizeHint().width() <= MAX_DOCK_WIDTH
    assert dock.width() <= MAX_DOCK_WIDTH
    assert canvas.width() >= 1.5 * dock.width()
    assert widget.native.height() <= 800  # taller content scrolls, the window does not grow
    assert clipped_labels(widget) == []


def test_no_label_is_clipped_before_during_and_after_a_run(docked, qtbot):
    viewer, widget = docked
    assert clipped_labels(widget) == []

    widget.controls["context"].value = 1
    widget.controls["context_axis"].value = "T"  # a long message in red: the data has no T axis
    qtbot.wait(50)
    assert "e06c6c" in widget.axes_status.value
    assert clipped_labels(widget) == []
    widget.controls["context_axis"].value = "auto"

    photo = np.random.default_rng(2).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    widget.image.value = viewer.add_image(photo, name="photo", rgb=True)
    qtbot.wait(50)
    assert clipped_labels(widget) == []

    run_to_end(qtbot, widget)
    qtbot.wait(50)
    assert widget.status.value.startswith("Denoised")
    assert clipped_labels(widget) == []


def test_controls_are_grouped_top_to_bottom_with_the_papers_terms(docked):
    _, widget = docked
    c = widget.controls

    order = [
        widget.image,
        widget.axes,
        widget.axes_status,
        widget.preset,
        c["device"],
        widget.estimate,
        widget.run_button,
        widget.progress,
        widget.status,
        c["beta"],
        c["mask_ratio"],
        c["iterations"],
        c["context"],
        c["context_axis"],
        c["static_scene"],
        widget.show_advanced,
    ]
    assert [top(widget, w) for w in order] == sorted(top(widget, w) for w in order)
    assert abs(top(widget, widget.cancel_button) - top(widget, widget.run_button)) <= 3  # one row
    labels = [c[n].label for n in ("beta", "mask_ratio", "iterations")]
    assert labels == ["beta (EMA weight)", "mask ratio", "iterations T"]
    titles = [label.text() for label in widget.native.findChildren(QLabel) if label.isVisible()]
    assert "MPI settings" in titles and "Stack" in titles

    advanced = [c[n] for n in ("model", "pd_factor", "seed", "adaptive", "tile_size", "precision")]
    assert not widget.show_advanced.value
    assert not any(w.native.isVisibleTo(widget.native) for w in [*advanced, widget.live_preview])
    widget.show_advanced.value = True
    assert all(w.native.isVisibleTo(widget.native) for w in [*advanced, widget.live_preview])
    assert top(widget, widget.show_advanced) < min(top(widget, w) for w in advanced)


def test_stack_group_shows_only_for_images_with_a_stack_axis_and_hidden_values_do_not_count(docked):
    viewer, widget = docked
    shown = widget.stack_group.native.isVisibleTo
    assert shown(widget.native)  # the z-stack
    widget.controls["context"].value = 2
    widget.controls["static_scene"].value = False

    widget.image.value = viewer.add_image(np.zeros((48, 48), np.uint16), name="plane")
    assert not shown(widget.native)
    assert widget.params().context is None  # the hidden 2 does not reach the run
    assert "e06c6c" not in widget.axes_status.value

    photo = viewer.add_image(np.zeros((40, 40, 3), np.uint8), name="photo", rgb=True)
    widget.image.value = photo
    assert not shown(widget.native)

    widget.image.value = viewer.add_image(np.zeros((3, 48, 48), np.uint16), name="series", axis_labels=("t", "y", "x"))
    assert shown(widget.native)
    assert widget.params().context == 2
    widget.axes.value = "CYX"  # channels are not neighbours
    assert not shown(widget.native)


def test_a_warning_is_shown_once_however_often_the_run_raises_or_records_it(docked, qtbot, monkeypatch):
    from napari.utils.notifications import notification_manager

    viewer, widget = docked
    plane = np.random.default_rng(3).poisson(50, (48, 48)).astype(np.uint16)
    widget.image.value = viewer.add_image(plane, name="plane")  # one small plane: a quick run
    message = "3 pixel value(s) lie outside the fitted intensity range"
    real = widget_module.denoise_iter

    def warning_twice(*args, **kwargs):
        warnings.warn(message, UserWarning, stacklevel=1)
        warnings.warn(message, UserWarning, stacklevel=1)  # e.g. once per plane
        result = yield from real(*args, **kwargs)
        result.warnings.extend([message, message])
        return result

    shown, relayed = [], []
    monkeypatch.setattr(widget_module, "denoise_iter", warning_twice)
    monkeypatch.setattr(widget_module, "show_warning", shown.append)
    monkeypatch.setattr(notification_manager, "receive_warning", lambda *args: relayed.append(args))

    run_to_end(qtbot, widget)

    assert shown == [f"Zero-shot denoise: {message}"]
    assert relayed == []


def test_preset_tooltip_says_which_presets_dim_small_spots(docked):
    _, widget = docked
    tip = " ".join(widget.preset.tooltip.split())

    assert "fast, quality and cpu dim small bright spots" in tip
    assert "keeps the integrated intensity of small bright spots" in tip
    assert "T=200" in tip and "T=1000" in tip  # from the presets themselves


def test_summary_falls_back_to_planes_time_and_device_and_its_first_sentence_keeps_decimals():
    from napari_mpid._qt.layers import first_sentence, result_summary

    old_result = SimpleNamespace(planes=1, seconds=2.4, device="cpu")

    assert result_summary(old_result) == "Denoised 1 plane in 2 s on cpu."
    assert first_sentence("Noise 0.5 % before. Then more.") == "Noise 0.5 % before."
    assert first_sentence("One sentence only") == "One sentence only"
