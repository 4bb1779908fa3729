"""The "Zero-shot denoise" dock widget: a thin layer over :func:`napari_mpid.api.denoise_iter`.

The controls are built from the fields of
:class:`~napari_mpid.core.params.FillParams` (see :mod:`.controls`); Run
reads the layer's data on the main thread, builds a FillParams and runs the
API's generator in a ``thread_worker``. Only the worker's ``yielded`` and
``returned`` callbacks touch layers, and Cancel (``worker.quit()``) stops it
between two filling iterations without leaving a partial layer behind.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, LineEdit, ProgressBar, PushButton, create_widget
from napari.layers import Image
from napari.qt.threading import GeneratorWorker, thread_worker
from napari.utils.notifications import show_error, show_info, show_warning

from ..core.checkpoints import CheckpointError
from ..core.devices import DeviceError, available_devices, resolve_device
from ..core.engine import DenoiseResult, InputError, Progress, resolve_axes
from ..core.params import PRESET_FIELDS, PRESETS, FillParams, ParameterError, preset_name
from .controls import ModelPicker, device_tooltip, field_control, fill_fields
from .layers import axes_help, guess_axes, publish, result_names

__all__ = ["DenoiseWidget"]

#: Errors that mean "the input or a setting is wrong": shown as one line, no traceback.
USER_ERRORS = (InputError, DeviceError, CheckpointError, ParameterError)
CUSTOM = "custom"
#: Fields shown under "advanced" (hidden until asked for).
ADVANCED = ("learning_rate", "tile_size", "tile_overlap", "normalization", "precision", "stack_planes", "cuda_graphs")
#: Iterations between two live previews (for about 20 previews per plane).
PREVIEWS_PER_PLANE = 20


@dataclass(frozen=True)
class _Failed:
    """Returned by the worker instead of raising for a user error."""

    message: str


def _run(
    image: np.ndarray, params: FillParams, axes: str, preview_every: int | None
) -> Generator[Progress, None, DenoiseResult | _Failed]:
    """The worker's generator: the API's, with user errors turned into a value."""
    from ..api import denoise_iter

    try:
        return (yield from denoise_iter(image, params, axes=axes, preview_every=preview_every))
    except USER_ERRORS as exc:
        return _Failed(str(exc))


def _format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA --:--"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"ETA {hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"ETA {rest // 60}:{rest % 60:02d}"


def progress_text(step: Progress) -> str:
    """The status line: plane i/N (and tile), iteration t/T, and the ETA."""
    tile = f", tile {step.tile}/{step.tiles}" if step.tiles > 1 else ""
    return f"plane {step.plane}/{step.planes}{tile}, iteration {step.iteration}/{step.iterations} · " + _format_eta(
        step.eta
    )


class DenoiseWidget(Container):
    """Zero-shot denoising of an image layer with MPI (masked pre-training + iterative filling).

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose layers are read and written.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        #: The running (or last) worker; tests connect to its signals.
        self.worker: GeneratorWorker | None = None
        self._source: Image | None = None
        self._setting_preset = False
        fields = fill_fields()
        defaults = FillParams()

        self.image = create_widget(
            annotation=Image, name="image", label="input image", options={"tooltip": "Image layer to denoise."}
        )
        self.preset = ComboBox(
            name="preset",
            label="preset",
            choices=[*PRESETS, CUSTOM],
            tooltip="Named settings of iterations, beta and learning rate: fast (T=200, beta=0.90), "
            "quality (T=1000, beta=0.99) or cpu (T=150, beta=0.90, lr 0.003: the fast "
            "preset's quality in fewer iterations); editing one switches to custom.",
        )
        devices = available_devices()
        #: One control per FillParams field, by field name.
        self.controls: dict[str, Any] = {}
        for name, f in fields.items():
            if name == "model":
                control = ModelPicker(f)
            elif name == "device":
                control = field_control(f, choices=tuple(devices), tooltip=device_tooltip(f.metadata["help"], devices))
            else:
                control = field_control(f)
            self.controls[name] = control
        self.axes = LineEdit(name="axes", label="axes", tooltip=axes_help())
        self.axes_status = Label(name="axes_status", label=" ")
        self.show_advanced = CheckBox(name="show_advanced", text="advanced settings", value=False)
        self.live_preview = CheckBox(
            name="live_preview",
            text="live preview",
            tooltip="Show the running average of the current plane while filling "
            "(a temporary layer, removed when the run ends).",
        )
        self.run_button = PushButton(name="run", text="Run")
        self.cancel_button = PushButton(name="cancel", text="Cancel", enabled=False)
        self.progress = ProgressBar(name="progress", label="progress", min=0, max=1000, value=0)
        self.status = Label(name="status", label=" ", value="")
        buttons = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False)
        buttons.margins = (0, 0, 0, 0)

        main = ["iterations", "beta", "mask_ratio", "model", "pd_factor", "device", "seed"]
        self.extend([self.image, self.axes, self.axes_status, self.preset])
        self.extend([self.controls[n] for n in main])
        self.extend([self.show_advanced, *(self.controls[n] for n in ADVANCED), self.live_preview])
        self.extend([buttons, self.progress, self.status])
        self.native.setMinimumWidth(340)
        self._on_show_advanced(False)
        self.preset.value = preset_name(defaults) or CUSTOM

        self.image.changed.connect(self._on_image)
        self.axes.changed.connect(self._check_axes)
        self.preset.changed.connect(self._on_preset)
        for name in PRESET_FIELDS:
            self.controls[name].changed.connect(self._on_preset_field)
        self.show_advanced.changed.connect(self._on_show_advanced)
        self.run_button.changed.connect(lambda: self.run())
        self.cancel_button.changed.connect(self.cancel)
        self._on_image(self.image.value)
        # Closing the dock while a run is going must not leave the thread computing.
        self.native.destroyed.connect(self._quit_worker)

    # -- controls ------------------------------------------------------------------

    def _on_show_advanced(self, shown: bool) -> None:
        for name in ADVANCED:
            self.controls[name].visible = shown

    def _on_preset(self, name: str) -> None:
        if name == CUSTOM:
            return
        chosen = PRESETS[name]
        self._setting_preset = True
        try:
            for field_name in PRESET_FIELDS:
                self.controls[field_name].value = getattr(chosen, field_name)
        finally:
            self._setting_preset = False

    def _on_preset_field(self) -> None:
        if self._setting_preset:
            return
        match = preset_name({name: self.controls[name].value for name in PRESET_FIELDS}) or CUSTOM
        self._setting_preset = True
        try:
            self.preset.value = match
        finally:
            self._setting_preset = False

    def _on_image(self, layer: Image | None) -> None:
        self.axes.value = guess_axes(layer) if layer is not None else ""
        self._check_axes()

    def _check_axes(self) -> str | None:
        """Validate the axes field against the layer; show the problem; return the axes or None."""
        layer = self.image.value
        if layer is None:
            self.axes_status.value = ""
            return None
        try:
            axes = resolve_axes(np.shape(layer.data), self.axes.value.strip().upper() or None, layer.rgb)
        except InputError as exc:
            self.axes_status.value = f"<span style='color:#e06c6c'>{exc}</span>"
            return None
        self.axes_status.value = self._axes_summary(np.shape(layer.data), axes)
        return axes

    @staticmethod
    def _axes_summary(shape: tuple[int, ...], axes: str) -> str:
        planes = int(np.prod([n for n, a in zip(shape, axes) if a not in "YXS"], dtype=np.int64))
        colour = " (RGB, filled together)" if "S" in axes else ""
        return f"{planes} plane(s) of {shape[axes.index('Y')]}x{shape[axes.index('X')]}{colour}"

    def params(self) -> FillParams:
        """The FillParams the controls describe.

        Raises
        ------
        ParameterError
            If a value is invalid (e.g. no checkpoint file chosen).
        """
        return FillParams(**{name: control.value for name, control in self.controls.items()})

    # -- running ---------------------------------------------------------------------

    def run(self, *, start: bool = True) -> GeneratorWorker | None:
        """Start denoising the selected layer; return the worker (None if nothing started).

        With ``start=False`` the worker is created and connected but not
        started, so that a caller (a test) can connect to its signals first.
        """
        if self.worker is not None and self.worker.is_running:
            return None
        layer = self.image.value
        if layer is None:
            show_error("Zero-shot denoise: choose an image layer first.")
            return None
        if layer.multiscale:
            show_error(
                f"Zero-shot denoise: {layer.name} is multiscale; denoise its full-resolution level as a separate layer."
            )
            return None
        try:
            params = self.params()
            axes = resolve_axes(np.shape(layer.data), self.axes.value.strip().upper() or None, layer.rgb)
            resolve_device(params.device)  # fail here, before a thread starts
        except USER_ERRORS as exc:
            show_error(f"Zero-shot denoise: {exc}")
            return None

        image = np.array(layer.data, copy=True)  # the worker never sees the layer
        preview_every = max(1, params.iterations // PREVIEWS_PER_PLANE) if self.live_preview.value else None
        worker = thread_worker(_run, start_thread=False)(image, params, axes, preview_every)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(self._on_returned)
        worker.aborted.connect(self._on_aborted)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._source = layer
        self._set_running(True)
        self.progress.value = 0
        self.status.value = f"starting on {params.device}..."
        if start:
            worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the running worker after its current iteration; no layer is changed."""
        if self.worker is not None and self.worker.is_running:
            self.status.value = "cancelling..."
            self.cancel_button.enabled = False
            self.worker.quit()

    def _quit_worker(self) -> None:
        # The Qt widgets may already be gone here: touch only the worker.
        if self.worker is not None and self.worker.is_running:
            self.worker.quit()

    def _set_running(self, running: bool) -> None:
        self.run_button.enabled = not running
        self.cancel_button.enabled = running

    def _on_progress(self, step: Progress) -> None:
        self.progress.value = round(step.fraction * 1000)
        self.status.value = progress_text(step)
        if step.preview is not None and self._source is not None:
            self._show_preview(step.preview)

    def _preview_name(self) -> str:
        return result_names(self._source.name)[0] + " (preview)"

    def _show_preview(self, plane: np.ndarray) -> None:
        source = self._source
        name = self._preview_name()
        spatial = {"scale": tuple(source.scale)[-2:], "translate": tuple(source.translate)[-2:]}
        if name in self.viewer.layers:
            self.viewer.layers[name].data = plane
        else:
            self.viewer.add_image(
                plane,
                name=name,
                rgb=source.rgb,
                contrast_limits=source.contrast_limits,
                colormap=source.colormap.name if not source.rgb else "gray",
                **spatial,
            )

    def _remove_preview(self) -> None:
        if self._source is not None and self._preview_name() in self.viewer.layers:
            self.viewer.layers.remove(self._preview_name())

    def _on_returned(self, outcome: DenoiseResult | _Failed) -> None:
        self._remove_preview()
        if isinstance(outcome, _Failed):
            self.status.value = "failed"
            show_error(f"Zero-shot denoise: {outcome.message}")
            return
        if self._source is None or self._source not in self.viewer.layers:
            self.status.value = "input layer was removed; result discarded"
            show_warning("Zero-shot denoise: the input layer was removed during the run; result discarded.")
            return
        publish(self.viewer, self._source, outcome)
        for message in outcome.warnings:
            show_warning(f"Zero-shot denoise: {message}")
        self.progress.value = 1000
        self.status.value = f"done in {outcome.seconds:.1f} s on {outcome.device}"
        show_info(f"Zero-shot denoise: {self._source.name} done in {outcome.seconds:.1f} s")

    def _on_aborted(self) -> None:
        self._remove_preview()
        self.progress.value = 0
        self.status.value = "cancelled"

    def _on_errored(self, exc: Exception) -> None:
        # napari's worker already reports the exception (with traceback) to
        # the notification manager: an unexpected error is a bug to report.
        self._remove_preview()
        self.status.value = f"error: {type(exc).__name__}"

    def _on_finished(self) -> None:
        self._set_running(False)
