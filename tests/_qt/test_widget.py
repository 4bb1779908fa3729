"""The "Zero-shot denoise" dock widget, driven through the napari plugin contribution."""

from __future__ import annotations

import numpy as np
import pytest

from napari_mpid._qt import widget as widget_module
from napari_mpid._qt.controls import fill_fields
from napari_mpid.core.params import PRESETS, FillParams

from .conftest import TEST_MODEL, run_to_end


@pytest.fixture
def errors(monkeypatch) -> list[str]:
    """Messages the widget sends to napari's show_error."""
    shown: list[str] = []
    monkeypatch.setattr(widget_module, "show_error", shown.append)
    return shown


def test_widget_docks_from_the_plugin_manifest(viewer_with_widget):
    viewer, widget = viewer_with_widget

    assert isinstance(widget, widget_module.DenoiseWidget)
    assert any(inner is widget for inner in viewer.window.dock_widgets.values())
    assert widget.image.value is viewer.layers["cells"]
    assert widget.native.minimumWidth() >= 300


def test_controls_come_from_fillparams_fields_with_their_help_as_tooltips(viewer_with_widget):
    _, widget = viewer_with_widget
    defaults = FillParams()

    for name, field in fill_fields().items():
        control = widget.controls[name]
        assert field.metadata["help"] in (control.tooltip or ""), name
        if name not in ("model", "device", "iterations"):  # changed by the fixture
            assert control.value == getattr(defaults, name), name
    assert widget.controls["iterations"].max == fill_fields()["iterations"].metadata["max"]


def test_device_list_offers_only_available_devices(viewer_with_widget):
    from napari_mpid.core.devices import available_devices

    _, widget = viewer_with_widget

    assert list(widget.controls["device"].choices) == available_devices()


def test_preset_sets_iterations_and_beta_and_editing_them_switches_to_custom(viewer_with_widget):
    _, widget = viewer_with_widget

    widget.preset.value = "quality"
    assert widget.controls["iterations"].value == PRESETS["quality"].iterations
    assert widget.controls["beta"].value == pytest.approx(PRESETS["quality"].beta)

    widget.controls["beta"].value = 0.95
    assert widget.preset.value == "custom"

    widget.preset.value = "fast"
    assert (widget.controls["iterations"].value, widget.controls["beta"].value) == (200, pytest.approx(0.90))

    widget.preset.value = "cpu"
    assert widget.controls["iterations"].value == 150
    assert widget.controls["learning_rate"].value == pytest.approx(3e-3)
    assert widget.params().learning_rate == pytest.approx(3e-3)
    widget.controls["learning_rate"].value = 2e-3  # back to the fast learning rate, T still 150
    assert widget.preset.value == "custom"


def test_axes_are_guessed_from_axis_labels_and_rgb_and_validated(viewer_with_widget):
    viewer, widget = viewer_with_widget
    assert widget.axes.value == "ZYX"

    rgb = viewer.add_image(np.zeros((40, 40, 3), np.uint8), name="photo", rgb=True)
    widget.image.value = rgb
    assert widget.axes.value == "YXS"

    widget.axes.value = "YXQ"
    assert "colour" not in widget.axes_status.value  # a plane axis of 3 is valid
    widget.axes.value = "YXW"
    assert "unknown axis letter" in widget.axes_status.value


def test_run_adds_denoised_and_noise_map_layers_over_the_input(qtbot, viewer_with_widget, stack):
    viewer, widget = viewer_with_widget
    widget.controls["seed"].value = 3

    run_to_end(qtbot, widget)

    denoised, noise = viewer.layers["cells denoised"], viewer.layers["cells noise map"]
    for layer in (denoised, noise):
        assert layer.data.shape == stack.shape
        np.testing.assert_allclose(layer.scale, (2.0, 0.5, 0.5))
        np.testing.assert_allclose(layer.translate, (0, 10, 20))
        assert tuple(layer.axis_labels) == ("z", "y", "x")
        assert layer.metadata["param_iterations"] == 2
        assert layer.metadata["param_seed"] == 3
        assert layer.metadata["param_model"] == TEST_MODEL
        assert layer.metadata["device"] == "cpu"
        assert "model_sha256" in layer.metadata
        assert layer.metadata["axes"] == "ZYX"
    np.testing.assert_allclose(denoised.data + noise.data, stack, atol=1e-3)
    assert tuple(denoised.contrast_limits) == pytest.approx(tuple(viewer.layers["cells"].contrast_limits))
    low, high = noise.contrast_limits
    assert low == pytest.approx(-high)
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    assert widget.progress.value == widget.progress.max


def test_second_run_replaces_the_result_layers_instead_of_adding_copies(qtbot, viewer_with_widget):
    viewer, widget = viewer_with_widget
    run_to_end(qtbot, widget)
    first = viewer.layers["cells denoised"]

    widget.controls["seed"].value = 7
    run_to_end(qtbot, widget)

    assert [layer.name for layer in viewer.layers] == ["cells", "cells denoised", "cells noise map"]
    assert viewer.layers["cells denoised"] is first
    assert first.metadata["param_seed"] == 7


def test_cancel_stops_the_run_and_leaves_the_layers_unchanged(qtbot, viewer_with_widget):
    viewer, widget = viewer_with_widget
    widget.controls["iterations"].value = 500
    widget.live_preview.value = True  # a preview layer must not survive the cancel either
    before = [layer.name for layer in viewer.layers]
    steps = []

    worker = widget.run(start=False)
    worker.yielded.connect(steps.append)
    worker.yielded.connect(lambda step: widget.cancel() if len(steps) == 1 else None)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        worker.start()

    assert [layer.name for layer in viewer.layers] == before
    assert len(steps) < 2 * 500
    assert widget.status.value == "cancelled"
    assert widget.run_button.enabled and not widget.cancel_button.enabled

    widget.controls["iterations"].value = 2  # the UI is usable again
    run_to_end(qtbot, widget)
    assert "cells denoised" in viewer.layers


def test_unavailable_device_is_reported_in_one_line_without_starting(viewer_with_widget, errors):
    viewer, widget = viewer_with_widget
    device = widget.controls["device"]
    if "cuda" in device.choices:
        pytest.skip("this machine has CUDA")
    device.choices = (*device.choices, "cuda")
    device.value = "cuda"

    assert widget.run() is None

    assert len(errors) == 1
    assert "cuda" in errors[0] and "not available" in errors[0]
    assert "\n" not in errors[0] and "Traceback" not in errors[0]
    assert [layer.name for layer in viewer.layers] == ["cells"]
    assert widget.run_button.enabled


def test_missing_checkpoint_in_the_worker_is_reported_in_one_line(qtbot, viewer_with_widget, errors, tmp_path):
    viewer, widget = viewer_with_widget
    widget.controls["model"].value = str(tmp_path / "missing.pt")

    run_to_end(qtbot, widget)

    assert len(errors) == 1 and "missing.pt" in errors[0]
    assert "\n" not in errors[0]
    assert [layer.name for layer in viewer.layers] == ["cells"]
    assert widget.run_button.enabled


def test_rgb_layer_gives_rgb_result_layers(qtbot, viewer_with_widget):
    viewer, widget = viewer_with_widget
    photo = np.random.default_rng(2).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    viewer.add_image(photo, name="photo", rgb=True, scale=(0.5, 0.5))
    widget.image.value = viewer.layers["photo"]
    assert widget.axes.value == "YXS"

    run_to_end(qtbot, widget)

    for name in ("photo denoised", "photo noise map"):
        layer = viewer.layers[name]
        assert layer.rgb and layer.data.shape == photo.shape
        np.testing.assert_allclose(layer.scale, (0.5, 0.5))
