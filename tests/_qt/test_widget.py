"""The "Zero-shot denoise" dock widget, driven through the napari plugin contribution."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from napari_mpid._qt import widget as widget_module
from napari_mpid._qt.controls import AUTOMATIC_TEXT, MODEL_DEFAULT_TEXT, field_docs, fill_fields
from napari_mpid.core.engine import estimate as estimate_module
from napari_mpid.core.engine import timing
from napari_mpid.core.params import DEFAULT_PRESET, PRESET_FIELDS, PRESETS, FillParams
from napari_mpid.core.run.devices import resolve_device, resolve_precision

from .conftest import TEST_MODEL, fake_calibration, run_to_end


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


def test_controls_come_from_fillparams_fields_with_their_help_as_tooltips(viewer_with_widget):
    _, widget = viewer_with_widget
    defaults = FillParams()
    opened_on = PRESETS[DEFAULT_PRESET]

    for name, field in fill_fields().items():
        control = widget.controls[name]
        assert field.metadata["help"] in (control.tooltip or ""), name
        if name not in ("model", "device", "iterations"):  # changed by the fixture
            expected = getattr(opened_on if name in PRESET_FIELDS else defaults, name)
            assert control.value == pytest.approx(expected) if expected is not None else control.value is None, name
    assert widget.controls["iterations"].max == fill_fields()["iterations"].metadata["max"]
    assert set(widget_module.MAIN) | set(widget_module.ADVANCED) == set(fill_fields())
    assert not set(widget_module.MAIN) & set(widget_module.ADVANCED)


def test_tooltips_add_the_fields_docstring_paragraph_to_their_help(viewer_with_widget):
    _, widget = viewer_with_widget
    docs = field_docs()

    assert "Higher values average over more iterations" in docs["beta"]
    for name in fill_fields():
        tooltip = " ".join((widget.controls[name].tooltip or "").split())
        assert docs[name] in tooltip, name


def test_widget_opens_on_the_auto_preset_with_or_without_a_gpu(make_napari_viewer, monkeypatch):
    viewer = make_napari_viewer()
    monkeypatch.setattr(widget_module, "available_devices", lambda: ["auto", "cpu"])
    on_cpu = widget_module.DenoiseWidget(viewer)
    monkeypatch.setattr(widget_module, "available_devices", lambda: ["auto", "cpu", "cuda:0"])
    on_gpu = widget_module.DenoiseWidget(viewer)

    for widget in (on_cpu, on_gpu):
        assert widget.preset.value == "auto"
        assert widget.params().adaptive is True
        assert widget.params().iterations == PRESETS["auto"].iterations


def test_a_rough_time_estimate_is_shown_before_run_and_follows_the_settings(viewer_with_widget):
    _, widget = viewer_with_widget
    widget.controls["precision"].value = "bfloat16"
    widget.controls["iterations"].value = 100
    # Shot noise (the Poisson stack): the auto preset's mix alone, 2 planes of 48x48 at 3 s per
    # megapixel after 0.5 s of start-up, whatever the iterations.
    text = widget.estimate.value
    assert text.startswith("rough estimate: ~1 s on cpu (bfloat16), at this machine's measured speed")
    assert "the network does not run (noise that grows with the signal" in text

    widget.controls["network"].value = "always"
    # 2 planes x 100 iterations x (0.01 s + 20 s per megapixel x 48x48) + 0.5 s in bf16.
    assert "at most 12 s on cpu (bfloat16)" in widget.estimate.value  # the auto preset may stop early
    assert "at this machine's speed (measured 2026-03-04)" in widget.estimate.value
    widget.controls["precision"].value = "float32"  # 40 s per megapixel
    assert "at most 21 s on cpu (float32)" in widget.estimate.value
    widget.controls["adaptive"].value = False  # fixed settings run all their iterations
    assert "~21 s" in widget.estimate.value
    widget.controls["iterations"].value = 1000
    assert "~3 min" in widget.estimate.value


def key_of(plan, device) -> str:
    p = plan.params
    return timing.calibration_key(device, p.precision, p.model, p.cuda_graphs)


def measure_with(monkeypatch, calibrate) -> list[str]:
    """Start from an empty cache and measure with ``calibrate``; return the key of each measurement."""
    monkeypatch.setattr(estimate_module, "load_calibration", timing.load_calibration)
    asked = []

    def measure(plan, device):
        asked.append(key_of(plan, device))
        return calibrate(plan, device)

    monkeypatch.setattr(widget_module, "calibrate_for", measure)
    return asked


def test_without_a_cached_speed_the_widget_measures_it_once_in_a_thread_then_shows_it(
    make_napari_viewer, qtbot, monkeypatch, stack
):
    def calibrate(plan, device):
        calibration = fake_calibration(key_of(plan, device))
        timing.save_calibration(calibration)  # into the test's own cache folder
        return calibration

    asked = measure_with(monkeypatch, calibrate)
    device = resolve_device("auto")
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="cells")
    widget = widget_module.DenoiseWidget(viewer)  # opens measuring the default settings' speed
    widget.preset.value = "fast"  # the network runs: its speed shows in the estimate
    # Another key, measured after the first: the precision "auto" does not resolve to on this
    # machine (bf16 on CPUs with AVX-512 BF16, else float32).
    other = "float32" if resolve_precision("auto", device) == "bfloat16" else "bfloat16"
    widget.controls["precision"].value = other

    assert widget.estimate.value == "rough estimate: calibrating on this machine..."
    qtbot.waitUntil(lambda: "measured 2026-03-04" in widget.estimate.value, timeout=10_000)
    # One at a time, each once.
    opened, chosen = (timing.calibration_key(device, precision, "real-noise") for precision in ("auto", other))
    assert asked == [opened, chosen]
    assert widget.estimate.value.startswith("rough estimate: ~") and f"{device} ({other})" in widget.estimate.value

    measured = len(asked)
    widget.controls["iterations"].value = 50  # the same device, precision and model: cached
    widget.preset.value = "quality"
    assert len(asked) == measured and "measured 2026-03-04" in widget.estimate.value
    widget.controls["model"].value = TEST_MODEL  # another model: measured once more
    assert widget.estimate.value == "rough estimate: calibrating on this machine..."
    qtbot.waitUntil(lambda: "measured 2026-03-04" in widget.estimate.value, timeout=10_000)
    assert len(asked) == measured + 1 and TEST_MODEL in asked[-1]
    widget.controls["model"].value = "real-noise"
    assert len(asked) == measured + 1 and "measured 2026-03-04" in widget.estimate.value


def test_a_calibration_that_fails_is_not_retried_and_the_fixed_speeds_are_shown(
    make_napari_viewer, qtbot, monkeypatch, stack
):
    def calibrate(plan, device):
        raise RuntimeError("out of memory")

    asked = measure_with(monkeypatch, calibrate)
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="cells")
    widget = widget_module.DenoiseWidget(viewer)
    widget.preset.value = "fast"
    widget.controls["device"].value = "cpu"

    qtbot.waitUntil(lambda: not widget._calibrating, timeout=10_000)
    assert "2-core CPU speed" in widget.estimate.value
    measured = len(asked)
    widget.controls["iterations"].value = 50
    assert len(asked) == measured == len(set(asked)) and "2-core CPU speed" in widget.estimate.value


def test_the_status_line_counts_down_from_the_estimate_shown_before_run(qtbot, viewer_with_widget, monkeypatch):
    # A run estimated at an hour (its start-up alone): the first ETA says so, where the rate of
    # its first step alone (a fraction of a second) said "ETA 0:00".
    def slow(key, cache=None):
        return dataclasses.replace(fake_calibration(key), startup=3600.0)

    monkeypatch.setattr(estimate_module, "load_calibration", slow)
    _, widget = viewer_with_widget
    widget.controls["adaptive"].value = False
    shown = []

    worker = widget.run(start=False)
    worker.yielded.connect(lambda _: shown.append(widget.status.value))
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        worker.start()

    minutes = re.search(r"ETA (\d+):\d\d", shown[0])
    assert minutes is not None and int(minutes.group(1)) >= 30, shown[0]


def test_mask_ratio_shows_the_models_own_ratio_until_set_and_survives_presets(viewer_with_widget):
    _, widget = viewer_with_widget
    box = widget.controls["mask_ratio"]
    assert box.value is None and widget.params().mask_ratio is None
    assert box.native.text() == MODEL_DEFAULT_TEXT
    assert "model's own" in box.tooltip and fill_fields()["mask_ratio"].metadata["help"] in box.tooltip

    box.value = 0.3
    assert widget.params().mask_ratio == pytest.approx(0.3)
    widget.preset.value = "quality"  # presets leave the mask ratio alone
    assert widget.params().mask_ratio == pytest.approx(0.3)
    box.value = None
    widget.preset.value = "fast"
    assert box.value is None and widget.params().mask_ratio is None
    assert box.native.text() == MODEL_DEFAULT_TEXT
    box.native.stepBy(1)  # one step up from "model's own" is the smallest valid ratio
    assert widget.params().mask_ratio == pytest.approx(fill_fields()["mask_ratio"].metadata["min"])


def test_neighbour_planes_controls_are_in_the_stack_group_and_default_to_automatic(viewer_with_widget):
    _, widget = viewer_with_widget
    context, axis = widget.controls["context"], widget.controls["context_axis"]

    assert not widget.show_advanced.value
    assert context.native.isVisibleTo(widget.native) and axis.native.isVisibleTo(widget.native)
    assert not widget.controls["tile_size"].native.isVisibleTo(widget.native)
    assert context.label == "neighbour planes"
    assert context.value is None and widget.params().context is None
    assert context.native.text() == AUTOMATIC_TEXT
    assert list(axis.choices) == ["auto", "Z", "T", "Q"] and widget.params().context_axis == "auto"
    context.value = 0
    assert widget.params().context == 0 and context.native.text() == "0"
    context.value = 2
    assert widget.params().context == 2


def test_axes_line_says_where_the_neighbour_planes_come_from(viewer_with_widget):
    viewer, widget = viewer_with_widget
    assert "each plane denoised on its own" in widget.axes_status.value  # 2 planes: too few for automatic context

    stack = np.random.default_rng(1).poisson(30, (3, 48, 48)).astype(np.uint16)
    widget.image.value = viewer.add_image(stack, name="three", axis_labels=("z", "y", "x"))
    assert (
        "3 planes of 48x48 pixels; each plane denoised with 2 neighbour planes on each side along Z "
        "(chosen automatically)" in widget.axes_status.value
    )

    widget.controls["context"].value = 0
    assert "each plane denoised on its own" in widget.axes_status.value
    widget.controls["context"].value = 1
    widget.controls["context_axis"].value = "T"  # the data has no T axis
    assert "context_axis 'T'" in widget.axes_status.value and "e06c6c" in widget.axes_status.value
    assert widget.estimate.value == ""


def test_device_list_offers_only_available_devices(viewer_with_widget):
    from napari_mpid.core.run.devices import available_devices

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

    widget.preset.value = "auto"
    assert widget.controls["adaptive"].value is True and widget.params().adaptive
    assert not widget.controls["adaptive"].native.isVisibleTo(widget.native)  # under advanced
    widget.controls["adaptive"].value = False  # auto without adaptive is the fast preset
    assert widget.preset.value == "fast"


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
    # What was done, in plain words: the first sentence in the status line, all of it in its
    # tooltip and in the metadata; what the auto preset chose stays in the metadata's notes.
    summary = denoised.metadata["summary"]
    assert summary.startswith("Denoised 2 planes in ") and "on cpu" in summary
    assert summary.startswith(widget.status.value) and widget.status.value.endswith(".")
    assert " ".join(widget.status.tooltip.split()) == " ".join(summary.split())
    assert "auto:" not in widget.status.value and "auto_choices" not in widget.status.tooltip
    assert any(note.startswith("auto:") for note in denoised.metadata["notes"])


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


def test_progress_also_goes_to_napari_activity_dock(qtbot, viewer_with_widget):
    from napari.utils import progress

    _, widget = viewer_with_widget
    seen = []

    worker = widget.run(start=False)
    worker.yielded.connect(lambda _: seen.extend(p for p in progress._all_instances if "cells" in p.desc))
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        worker.start()

    assert seen and all("Zero-shot denoise: cells" in p.desc for p in seen)
    assert seen[-1].n == seen[-1].total == widget_module.STEPS
    assert not any("cells" in p.desc for p in progress._all_instances)  # closed with the run


def test_cancel_in_the_activity_dock_stops_the_run(qtbot, viewer_with_widget):
    viewer, widget = viewer_with_widget
    widget.controls["iterations"].value = 500
    widget.controls["network"].value = "always"  # a run long enough to cancel: shot noise alone skips the network
    steps = []

    worker = widget.run(start=False)
    worker.yielded.connect(steps.append)
    worker.yielded.connect(lambda _: widget._activity.cancel() if len(steps) == 1 else None)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        worker.start()

    assert len(steps) < 2 * 500
    assert widget.status.value == "cancelled"
    assert [layer.name for layer in viewer.layers] == ["cells"]


def test_rgb_layer_with_live_preview_shows_rgb_previews_and_a_monotonic_bar(qtbot, viewer_with_widget):
    # Issue 9: RGB previews came out (H, W, 1), which napari refuses for rgb=True, and the
    # fraction ran 0.5 -> 1.0 once per colour part.
    viewer, widget = viewer_with_widget
    photo = np.random.default_rng(2).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    viewer.add_image(photo, name="photo", rgb=True)
    widget.image.value = viewer.layers["photo"]
    widget.live_preview.value = True
    bars, previews = [], []
    viewer.layers.events.inserted.connect(
        lambda event: previews.append(event.value.data.shape) if "(preview)" in event.value.name else None
    )

    worker = widget.run(start=False)
    worker.yielded.connect(lambda _: bars.append(widget.progress.value))
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        worker.start()

    assert previews == [(40, 40, 3)]  # added once, then updated
    assert viewer.layers["photo denoised"].rgb
    assert bars == sorted(bars) and bars[-1] == widget.progress.max
    assert "photo denoised (preview)" not in viewer.layers


@pytest.mark.parametrize(
    ("shape", "settings"),
    [((100, 120), {"tile_size": 64, "tile_overlap": 8}), ((2, 48, 48), {"stack_planes": 2})],
    ids=["tiled plane", "stack mode"],
)
def test_live_preview_works_for_tiled_planes_and_in_stack_mode(qtbot, viewer_with_widget, shape, settings):
    # Issue 9: previews silently did nothing in stack mode and for tiled planes.
    viewer, widget = viewer_with_widget
    data = np.random.default_rng(4).poisson(40, shape).astype(np.uint16)
    widget.image.value = viewer.add_image(data, name="big")
    if "stack_planes" in settings:
        widget.preset.value = "fast"  # stack mode fills with the paper's loop; auto fills plane by plane
    for name, value in settings.items():
        widget.controls[name].value = value
    widget.controls["iterations"].value = 4
    # Previews of a filling that runs to the end: noise alone gives the auto preset's
    # check nothing to earn, and it would abandon the filling after one iteration.
    widget.controls["network"].value = "always"
    widget.live_preview.value = True
    previews, steps = [], []
    viewer.layers.events.inserted.connect(
        lambda event: previews.append(event.value.data.shape) if "(preview)" in event.value.name else None
    )

    worker = widget.run(start=False)
    worker.yielded.connect(steps.append)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        worker.start()

    assert previews == [shape[-2:]]  # added once, then updated
    assert sum(step.preview is not None for step in steps) >= 4
    if "tile_size" in settings:
        assert max(s.tiles for s in steps) > 1
    else:
        assert max(s.group for s in steps) == 2
    assert viewer.layers["big denoised"].data.shape == shape


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


def test_three_plane_stack_with_one_neighbour_plane_each_side(qtbot, viewer_with_widget, errors):
    viewer, widget = viewer_with_widget
    stack = np.random.default_rng(5).poisson(30, (3, 48, 48)).astype(np.uint16)
    widget.image.value = viewer.add_image(stack, name="zstack", axis_labels=("z", "y", "x"))
    widget.controls["context"].value = 1
    assert widget.axes.value == "ZYX"

    run_to_end(qtbot, widget)

    assert errors == []
    denoised = viewer.layers["zstack denoised"]
    assert denoised.data.shape == stack.shape
    assert denoised.metadata["param_context"] == 1
    assert denoised.metadata["param_context_axis"] == "Z"
    np.testing.assert_allclose(denoised.data + viewer.layers["zstack noise map"].data, stack, atol=1e-3)


def test_repeated_exposures_are_averaged_and_the_mean_denoised_into_every_plane(qtbot, viewer_with_widget):
    viewer, widget = viewer_with_widget
    static = widget.controls["static_scene"]
    assert static.native.isVisibleTo(widget.native) and static.value is False  # off by default
    static.value = True
    assert widget.params().static_scene
    assert "repeated exposures: the 2 planes along Z are averaged and the mean denoised" in widget.axes_status.value

    run_to_end(qtbot, widget)

    denoised, noise = viewer.layers["cells denoised"].data, viewer.layers["cells noise map"].data
    np.testing.assert_array_equal(denoised[0], denoised[1])
    np.testing.assert_allclose(denoised + noise, viewer.layers["cells"].data, atol=1e-3)
    assert viewer.layers["cells denoised"].metadata["param_static_scene"] is True


def test_the_status_line_says_whether_the_network_ran_and_what_produced_the_result(qtbot, viewer_with_widget):
    # Shot noise over blobs: the auto preset skips the network; Gaussian noise of one level
    # over texture: it runs, and abandons the (random) network's filling, which earns nothing,
    # unless asked to keep it. The status line names the families of the final mix every time.
    viewer, widget = viewer_with_widget
    rng = np.random.default_rng(6)
    y, x = np.mgrid[:64, :64]
    blobs = 0.05 + sum(0.6 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 20.0) for cy, cx in rng.uniform(8, 56, (8, 2)))
    texture = (np.sin(x / 2.0) * np.cos(y / 3.0) * 0.2 + 0.5 + rng.normal(0, 0.08, (64, 64))).astype(np.float32)
    shown = {}
    cases = (("shot", (rng.poisson(blobs * 60) * 10 + 100).astype(np.uint16), "auto"), ("flat", texture, "auto"),
             ("kept", texture, "always"))  # fmt: skip
    for name, data, network in cases:
        widget.image.value = viewer.add_image(data, name=name)
        widget.controls["network"].value = network
        run_to_end(qtbot, widget)
        shown[name] = widget.status.value

    assert shown["shot"].startswith("Denoised 1 plane in ") and "without the network: " in shown["shot"]
    assert "without the network (tried on 1 plane, abandoned: it earned nothing): " in shown["flat"]
    assert "with the network on every plane: network" in shown["kept"]
    assert all("%" in text and text.endswith(".") for text in shown.values())


def test_a_noise_profile_file_is_optional_and_reaches_the_run(qtbot, viewer_with_widget, tmp_path):
    from napari_mpid.api import measure_noise_profile

    viewer, widget = viewer_with_widget
    control = widget.controls["noise_profile"]
    assert control.value is None and widget.params().noise_profile is None
    # Two exposures of the stack's field with the same camera: Poisson counts.
    mean = np.broadcast_to(np.linspace(20.0, 200.0, 48), (48, 48))
    rng = np.random.default_rng(5)
    path = measure_noise_profile([rng.poisson(mean).astype(np.uint16) for _ in range(2)]).save(tmp_path / "p.json")
    control.value = path
    assert widget.params().noise_profile == str(path)
    assert "noise from the profile (2 exposures, lag-1 correlation" in widget.axes_status.value

    run_to_end(qtbot, widget)

    notes = viewer.layers["cells denoised"].metadata["notes"]
    assert any(note.startswith(f"noise from the profile {path}") for note in notes)
    control.value = None
    assert widget.params().noise_profile is None
    control.value = tmp_path / "missing.json"
    assert "does not exist" in widget.axes_status.value


def test_a_noise_profile_is_measured_from_a_layer_of_repeated_exposures(viewer_with_widget, tmp_path, errors):
    viewer, widget = viewer_with_widget
    rng = np.random.default_rng(6)
    field = np.broadcast_to(np.linspace(30.0, 300.0, 64), (64, 64))
    viewer.add_image(rng.poisson(field, (3, 64, 64)).astype(np.uint16), name="exposures")
    widget.image.value = viewer.layers["exposures"]
    path = tmp_path / "scope.json"

    assert widget.measure_profile(str(path)) == str(path)
    assert path.exists() and widget.controls["noise_profile"].value == str(path)
    assert widget.params().noise_profile == str(path)
    assert not errors

    viewer.add_image(rng.poisson(field).astype(np.uint16), name="one plane")
    widget.image.value = viewer.layers["one plane"]
    assert widget.measure_profile(str(tmp_path / "other.json")) is None
    assert "at least two exposures" in errors[-1] and not (tmp_path / "other.json").exists()
