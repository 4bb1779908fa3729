"""The "Zero-shot denoise" dock widget: a thin layer over :func:`napari_mpid.api.denoise_iter`.

Top to bottom: the image and its axes, with a line saying what a run would
do; the preset and the device, with a rough time (at this machine's speed,
measured in a background thread once per device, precision and model); Run,
Cancel, the progress bar and the status line; the paper's filling
parameters ("MPI settings"); the neighbour-plane settings ("Stack", shown
only for images with a Z, T or Q axis); everything else under "advanced
settings", collapsed. The controls are built from the fields of
:class:`~napari_mpid.core.params.FillParams` (see :mod:`.controls`). The
whole column scrolls, and its texts wrap, so that the dock stays narrow and
the canvas keeps most of the window.

Run reads the layer's data on the main thread (an in-memory array is copied;
a lazy one, dask, zarr or the highest level of a multiscale layer, is passed
as it is and read plane by plane by the worker, its results written into
on-disk stores), builds a FillParams and runs the engine's generator in a
``thread_worker``. Only the worker's ``yielded`` and ``returned`` callbacks
touch layers, progress also goes to napari's activity dock, and Cancel
(``worker.quit()``) stops it between two filling iterations without leaving
a partial layer behind. A warning is shown once, as a napari notification,
however many times the run raised or recorded it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from magicgui.widgets import CheckBox, ComboBox, Container, Label, LineEdit, ProgressBar, PushButton, create_widget
from napari.layers import Image
from napari.qt.threading import FunctionWorker, GeneratorWorker, thread_worker
from napari.utils import cancelable_progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QSizePolicy

from napari_mpid import api
from napari_mpid._qt.controls import (
    ModelPicker,
    device_tooltip,
    field_control,
    field_tooltip,
    fill_fields,
    narrow_combo,
    wrap_tooltip,
)
from napari_mpid._qt.layers import (
    axes_help,
    first_sentence,
    full_resolution,
    guess_axes,
    publish,
    result_names,
    result_summary,
)
from napari_mpid._qt.stores import PlaneStore, is_in_memory
from napari_mpid.api import (
    USER_ERRORS,
    Calibration,
    DenoiseResult,
    EtaTracker,
    InputError,
    LoadedModel,
    Plan,
    Progress,
    available_devices,
    calibrate_for,
    calibration_for,
    calibration_key,
    denoise_iter,
    estimate_text,
    eta_tracker,
    load_model,
    resolve_axes,
    resolve_device,
)
from napari_mpid.core.params import DEFAULT_PRESET, PRESET_FIELDS, PRESETS, FillParams, preset_descriptions, preset_name

__all__ = ["ADVANCED", "MAIN", "MPI_SETTINGS", "STACK", "STACK_AXES", "DenoiseWidget", "preset_help", "progress_text"]

#: Errors that mean "the input or a setting is wrong": shown as one line, no traceback.
CUSTOM = "custom"
#: The paper's filling parameters, always shown under "MPI settings", in this order.
MPI_SETTINGS = ("beta", "mask_ratio", "iterations")
#: Neighbour-plane fields, under "Stack": shown only when the image has one of :data:`STACK_AXES`.
STACK = ("context", "context_axis", "static_scene")
#: Axes along which planes can be neighbours or repeated exposures.
STACK_AXES = "ZTQ"
#: Fields always shown: the device beside the preset, then the groups above.
MAIN = ("device", *MPI_SETTINGS, *STACK)
#: Fields under "advanced settings" (collapsed until asked for): these first, the rest in FillParams order.
ADVANCED = ("model", "pd_factor", "seed", "adaptive")
ADVANCED += tuple(name for name in fill_fields() if name not in MAIN + ADVANCED)
#: Iterations between two live previews (for about 20 previews per plane).
PREVIEWS_PER_PLANE = 20
#: Steps of the progress bars (the widget's and the activity dock's).
STEPS = 1000


@dataclass(frozen=True)
class _Failed:
    """Returned by the worker instead of raising for a user error."""

    message: str


def _run(
    image: Any, params: FillParams, axes: str, preview_every: int | None, out: Any = None, noise_out: Any = None
) -> Generator[Progress, None, DenoiseResult | _Failed]:
    """The worker's generator: the engine's, with user errors turned into a value.

    ``image`` is a private numpy copy or a lazy array read plane by plane;
    ``out`` and ``noise_out`` (on-disk stores for lazy input, else None)
    receive the finished planes.
    """
    try:
        return (
            yield from denoise_iter(image, params, axes=axes, preview_every=preview_every, out=out, noise_out=noise_out)
        )
    except USER_ERRORS as exc:
        return _Failed(str(exc))


def _calibrate(plan: Plan, device: torch.device) -> Calibration | None:
    """The calibration worker's function: this machine's speed for ``plan``, None if it could not be measured."""
    try:
        return calibrate_for(plan, device)
    except Exception:  # an estimate must never stop the widget: the fixed speeds are shown instead
        return None


def _format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA --:--"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"ETA {hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"ETA {rest // 60}:{rest % 60:02d}"


def progress_text(step: Progress, eta: float | None) -> str:
    """The status line: plane i/N (and colour, tile), iteration t/T, and ``eta`` (seconds left, None: unknown).

    Context filling says which stage it is in: fitting the stack's network
    (iteration t/T), then predicting plane i/N.
    """
    eta = " · " + _format_eta(eta)
    if step.stage == "fit":
        return f"fitting on the stack, iteration {step.iteration}/{step.iterations}{eta}"
    if step.stage == "predict":
        return f"predicting plane {step.plane}/{step.planes}{eta}"
    planes = f"planes {step.plane}-{step.plane + step.group - 1}" if step.group > 1 else f"plane {step.plane}"
    colour = f", colour {step.part}/{step.parts}" if step.parts > 1 else ""
    tile = f", tile {step.tile}/{step.tiles}" if step.tiles > 1 else ""
    return f"{planes}/{step.planes}{colour}{tile}, iteration {step.iteration}/{step.iterations}{eta}"


def preset_help() -> str:
    """The preset control's tooltip: each preset's description (:func:`preset_descriptions`), what it does to spots."""
    described = "\n".join(
        f"{name}{' (the default)' if name == DEFAULT_PRESET else ''}: {text}."
        for name, text in preset_descriptions().items()
    )
    return wrap_tooltip(
        f"How to denoise.\n{described}\n"
        "Spots: fast, quality and cpu dim small bright spots (a 3x3 spot keeps 50-80 % of its peak and 75-90 % "
        "of its integrated intensity); auto keeps the integrated intensity of small bright spots (within 5 % "
        "for 3x3 spots): to count or measure spots, use auto.\n"
        "Changing iterations, beta or an advanced setting switches to custom."
    )


def _wrapping_label(name: str, tooltip: str | None = None) -> Label:
    """A full-width text that wraps: its width comes from the dock, never the other way round."""
    label = Label(name=name, value="", tooltip=tooltip)
    native = label.native
    native.setWordWrap(True)
    policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    policy.setHeightForWidth(True)
    native.setSizePolicy(policy)
    return label


def _header(text: str) -> Label:
    """The bold title of a group of controls."""
    label = Label(name=text.lower().replace(" ", "_") + "_title", value=text)
    label.native.setStyleSheet("font-weight: bold; margin-top: 6px;")
    return label


def _group(name: str, widgets: list[Any]) -> Container:
    group = Container(name=name, widgets=widgets, labels=True)
    group.margins = (0, 0, 0, 0)
    return group


class _LayoutWatcher(QObject):
    """Calls ``fit`` whenever the watched widget's layout is redone (a group shown, the style applied)."""

    def __init__(self, parent: QObject, fit: Callable[[], None]) -> None:
        super().__init__(parent)
        self.fit = fit

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:
            self.fit()
        return False


class DenoiseWidget(Container):
    """Zero-shot denoising of an image layer with MPI (masked pre-training + iterative filling).

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose layers are read and written.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=False)
        self.viewer = napari_viewer
        #: The running (or last) worker; tests connect to its signals.
        self.worker: GeneratorWorker | None = None
        self._source: Image | None = None
        self._activity: cancelable_progress | None = None
        self._setting_preset = False
        self._planning_model: tuple[str, LoadedModel] | None = None
        #: Whether the image has a stack axis (the "Stack" group is shown and used).
        self._stacked = False
        #: Warnings of the current run already shown.
        self._warned: set[str] = set()
        #: The time left in the current run, from the estimate and the rate measured since.
        self._eta: EtaTracker | None = None
        #: The running (or last) measurement of this machine's speed; tests connect to its signals.
        self.calibration_worker: FunctionWorker | None = None
        #: Set from start to ``finished`` (a worker's own ``is_running`` waits for its thread to start).
        self._calibrating = False
        #: Calibration keys already measured (or tried) by this widget: each is asked once.
        self._calibrations_asked: set[str] = set()
        #: A calibration was due while a run was going (it would have timed the run): asked after it.
        self._calibration_deferred = False
        fields = fill_fields()

        self.image = create_widget(
            annotation=Image,
            name="image",
            label="image",
            options={"tooltip": "Image layer to denoise (of a multiscale layer, its highest resolution)."},
        )
        narrow_combo(self.image)
        self.preset = ComboBox(name="preset", label="preset", choices=[*PRESETS, CUSTOM], tooltip=preset_help())
        devices = available_devices()
        #: One control per FillParams field, by field name.
        self.controls: dict[str, Any] = {}
        for name, f in fields.items():
            if name == "model":
                control = ModelPicker(f)
            elif name == "device":
                tip = device_tooltip(field_tooltip(f), devices)
                control = field_control(f, choices=tuple(devices), tooltip=tip)
            else:
                control = field_control(f)
            self.controls[name] = control
        self.axes = LineEdit(name="axes", label="axes", tooltip=wrap_tooltip(axes_help()))
        self.axes_status = _wrapping_label("axes_status")
        self.show_advanced = CheckBox(name="show_advanced", text="advanced settings", value=False)
        self.live_preview = CheckBox(
            name="live_preview",
            text="live preview",
            tooltip="Show the running average of the current plane while filling "
            "(a temporary layer, removed when the run ends).",
        )
        self.estimate = _wrapping_label(
            "estimate",
            tooltip=wrap_tooltip(
                "How long the run may take: the work of these settings on the selected layer times "
                "this machine's speed, measured in a few seconds the first time a device, precision and "
                "model are chosen, and remembered (if that fails, the speed of a 2-core CPU or of one "
                "NVIDIA H100). With the auto preset, the first plane's noise says whether the network "
                "runs at all. A rough figure: other work on the machine slows a run down."
            ),
        )
        self.measure_profile_button = PushButton(
            name="measure_profile",
            text="measure noise profile from layer...",
            tooltip=wrap_tooltip(
                "Measure the camera's noise from the selected layer, if its planes are repeated exposures of one "
                "unchanging field taken with the settings of the data to denoise (at least two planes, one "
                "channel; three or more for correlated noise), save it as a profile file and use it. Then "
                "select the data to denoise."
            ),
        )
        self.run_button = PushButton(name="run", text="Run")
        self.cancel_button = PushButton(name="cancel", text="Cancel", enabled=False)
        self.progress = ProgressBar(name="progress", min=0, max=STEPS, value=0)
        self.status = _wrapping_label("status")
        buttons = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False)
        buttons.margins = (0, 0, 0, 0)

        inputs = _group("inputs", [self.image, self.axes])
        setup = _group("setup", [self.preset, self.controls["device"]])
        #: The paper's parameters (always shown) and the neighbour-plane ones (stacks only).
        self.mpi_group = _group("mpi_settings", [self.controls[n] for n in MPI_SETTINGS])
        self.stack_title = _header("Stack")
        self.stack_group = _group("stack", [self.controls[n] for n in STACK])
        #: Everything else, hidden until "advanced settings" is ticked.
        advanced = [self.controls[n] for n in ADVANCED]
        advanced.insert(ADVANCED.index("noise_profile") + 1, self.measure_profile_button)
        self.advanced = _group("advanced", [*advanced, self.live_preview])
        groups = (inputs, setup, self.mpi_group, self.stack_group, self.advanced)
        body = Container(
            name="body",
            labels=False,
            widgets=[
                inputs,
                self.axes_status,
                setup,
                self.estimate,
                buttons,
                self.progress,
                self.status,
                _header("MPI settings"),
                self.mpi_group,
                self.stack_title,
                self.stack_group,
                self.show_advanced,
                self.advanced,
            ],
        )
        self.append(body)
        self._scroll_body(body, groups)
        self._on_show_advanced(False)

        self.image.changed.connect(self._on_image)
        self.axes.changed.connect(self._describe)
        self.preset.changed.connect(self._on_preset)
        for name in PRESET_FIELDS:
            self.controls[name].changed.connect(self._on_preset_field)
        for control in self.controls.values():
            control.changed.connect(self._describe)
        self.show_advanced.changed.connect(self._on_show_advanced)
        self.run_button.changed.connect(lambda: self.run())
        self.measure_profile_button.changed.connect(lambda: self.measure_profile())
        self.cancel_button.changed.connect(self.cancel)
        self.preset.value = DEFAULT_PRESET
        self._on_preset(self.preset.value)
        self._on_image(self.image.value)
        # Closing the dock while a run is going must not leave the thread computing.
        self.native.destroyed.connect(self._quit_worker)

    # -- layout --------------------------------------------------------------------

    def _scroll_body(self, body: Container, groups: tuple[Container, ...]) -> None:
        """Put the column in a scroll area: opened "advanced settings" must not make the window taller."""
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body.native.layout().addStretch(1)  # controls stay together at the top of a tall dock
        scroll.setWidget(body.native)  # takes it out of this container's layout
        self.native.layout().addWidget(scroll)
        self.margins = (0, 0, 0, 0)
        self._scroll = scroll
        self._row_labels = [
            w._labeled_widget()._label_widget.native for g in groups for w in g if w._labeled_widget() is not None
        ]
        body.native.installEventFilter(_LayoutWatcher(scroll, self._fit))
        self._fit()

    def _fit(self) -> None:
        """One label column for all groups, and a scroll area as wide as its content's minimum.

        Measured whenever the layout changes: napari's style sheet, applied
        when the widget is docked, changes the font. A scroll area's own
        minimum width ignores its content, which would then be squeezed.
        """
        widest = max(label.sizeHint().width() for label in self._row_labels)
        for label in self._row_labels:
            label.setMinimumWidth(widest)
        content = self._scroll.widget()
        bar = self._scroll.verticalScrollBar().sizeHint().width()
        self._scroll.setMinimumWidth(content.minimumSizeHint().width() + bar)

    # -- controls ------------------------------------------------------------------

    def _on_show_advanced(self, shown: bool) -> None:
        self.advanced.visible = shown

    def _show_stack_group(self, stacked: bool) -> None:
        self._stacked = stacked
        self.stack_title.visible = self.stack_group.visible = stacked

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
        self._describe()

    def _describe(self) -> str | None:
        """Show what a run would do (planes, neighbours, rough time); return the axes, None if they are wrong.

        The axes line says how many planes of which size will be denoised
        and, from the run's plan, whether each plane is denoised with its
        neighbours; the estimate line gives a rough time. A wrong axes string
        or a setting the data does not allow (e.g. a neighbour axis it lacks)
        is shown in red instead. The "Stack" group is shown when the axes
        have a stack axis of more than one plane.
        """
        layer = self.image.value
        if layer is None:
            self.axes_status.value = self.estimate.value = ""
            self._show_stack_group(False)
            return None
        shape = tuple(np.shape(full_resolution(layer)))
        typed = self.axes.value.strip().upper()
        try:
            axes = resolve_axes(shape, typed or None, layer.rgb)
        except InputError as exc:
            self._show_stack_group(any(a in STACK_AXES for a in typed))
            self._show_problem(str(exc))
            return None
        self._show_stack_group(any(a in STACK_AXES and n > 1 for n, a in zip(shape, axes)))
        summary = self._axes_summary(shape, axes)
        self.axes_status.value, self.estimate.value = summary, ""
        try:
            params = self.params()
            device = resolve_device(params.device)
            plan = api.plan(
                shape,
                full_resolution(layer).dtype,
                params,
                model=self._model_for_planning(params),
                device=device,
                axes=axes,
            )
        except InputError as exc:  # the data and the settings do not go together
            self._show_problem(str(exc))
            return axes
        except USER_ERRORS:  # a setting alone is wrong: Run says so
            return axes
        summary = self._axes_summary(shape, axes, plan.parts)
        try:
            noise = self._profile_summary(params, full_resolution(layer).dtype)
        except InputError as exc:  # a profile file that cannot be used: say so before Run
            self._show_problem(str(exc))
            return axes
        self.axes_status.value = summary + self._context_summary(plan, automatic=params.context is None) + noise
        self.estimate.value = self._estimate(plan, device, full_resolution(layer))
        return axes

    @staticmethod
    def _profile_summary(params: FillParams, dtype: Any) -> str:
        """Where the noise comes from when a profile is chosen (read again on every change: files change)."""
        if params.noise_profile is None:
            return ""
        profile = api.load_profile(params.noise_profile)
        units = "" if np.dtype(dtype) == np.dtype(profile.dtype) else f", measured on {profile.dtype} data"
        return (
            f"; noise from the profile ({profile.frames} exposures, lag-1 correlation {profile.correlation:.2f}{units})"
        )

    def _estimate(self, plan: Plan, device: torch.device, source: Any) -> str:
        """The estimate line; without this machine's speed for the run, measure it first (in a thread)."""
        if calibration_for(plan, device) is None and self._start_calibration(plan, device):
            return "rough estimate: calibrating on this machine..."
        return estimate_text(plan, device, source=source)

    def _start_calibration(self, plan: Plan, device: torch.device) -> bool:
        """Measure the speed of ``plan``'s runs in a worker thread, once per key; return whether one is running.

        It runs a few real filling steps (seconds on a CPU), never on the GUI
        thread and never during a run, which would slow both and cache a speed
        that is too low. One at a time: a key still missing when the running
        one returns is asked then (the estimate is redone on return).
        """
        if self._calibrating:
            return True
        p = plan.params
        key = calibration_key(device, p.precision, p.model, p.cuda_graphs)
        if key in self._calibrations_asked:  # measured, or it failed: the fixed speeds
            return False
        if self.worker is not None and self.worker.is_running:
            self._calibration_deferred = True
            return False
        self._calibrations_asked.add(key)
        worker = thread_worker(_calibrate, start_thread=False)(plan, device)
        worker.finished.connect(self._on_calibrated)
        self.calibration_worker = worker
        self._calibrating = True
        worker.start()
        return True

    def _on_calibrated(self) -> None:
        # Measured (now in the cache) or failed (its key is not asked again): the estimate can be shown.
        self._calibrating = False
        self._describe()

    def _show_problem(self, message: str) -> None:
        self.axes_status.value = f"<span style='color:#e06c6c'>{message}</span>"
        self.estimate.value = ""

    def _model_for_planning(self, params: FillParams) -> LoadedModel:
        """The model on the CPU, loaded once per model spec: a plan needs its size limits and mask ratio."""
        if self._planning_model is None or self._planning_model[0] != params.model:
            self._planning_model = (params.model, load_model(params.model, "cpu"))
        return self._planning_model[1]

    @staticmethod
    def _axes_summary(shape: tuple[int, ...], axes: str, parts: int = 1) -> str:
        """ "N planes of HxW pixels", and how colours are denoised (``parts``: 3 for RGB with a 1-channel model)."""
        planes = int(np.prod([n for n, a in zip(shape, axes) if a not in "YXS"], dtype=np.int64))
        colour = ""
        if "S" in axes:
            colour = ", RGB: colours denoised one by one" if parts > 1 else ", RGB: colours denoised together"
        count = "1 plane" if planes == 1 else f"{planes} planes"
        return f"{count} of {shape[axes.index('Y')]}x{shape[axes.index('X')]} pixels{colour}"

    @staticmethod
    def _context_summary(plan: Plan, *, automatic: bool) -> str:
        """Where the neighbour planes come from, as the plan resolved them."""
        p = plan.params
        if p.static_scene:
            return (
                f"; repeated exposures: the {len(plan.series[0])} planes along {p.context_axis} are averaged "
                "and the mean denoised"
            )
        if not plan.series:
            return "; each plane denoised on its own" if len(plan.planes) > 1 else ""
        how = " (chosen automatically)" if automatic else ""
        planes = "1 neighbour plane" if p.context == 1 else f"{p.context} neighbour planes"
        return f"; each plane denoised with {planes} on each side along {p.context_axis}{how}"

    def params(self) -> FillParams:
        """The FillParams the controls describe.

        The "Stack" group's fields keep their defaults while the group is
        hidden (the image has no stack axis): a hidden setting must not
        change a run.

        Raises
        ------
        ParameterError
            If a value is invalid (e.g. no checkpoint file chosen).
        """
        values = {name: control.value for name, control in self.controls.items()}
        if not self._stacked:
            defaults = FillParams()
            values.update({name: getattr(defaults, name) for name in STACK})
        return FillParams(**values)

    # -- running ---------------------------------------------------------------------

    def measure_profile(self, path: str | None = None) -> str | None:
        """Measure a noise profile from the selected layer's planes, save it and select it; return its path.

        ``path``: where to save it (asked with a file dialog when None).
        The layer's planes must be repeated exposures of one field (one
        channel); a problem is shown in one line and nothing is saved.
        """
        layer = self.image.value
        if layer is None:
            show_error("Zero-shot denoise: choose the layer of repeated exposures first.")
            return None
        data = full_resolution(layer)
        try:
            axes = resolve_axes(np.shape(data), self.axes.value.strip().upper() or None, layer.rgb)
            profile = api.measure_noise_profile(data, axes=axes)
        except USER_ERRORS as exc:
            show_error(f"Zero-shot denoise: {layer.name}: {exc}")
            return None
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getSaveFileName(
                self.native, "Save the noise profile", f"{layer.name}_noise_profile.json", "Noise profiles (*.json)"
            )
            if not path:
                return None
        profile.save(path)
        self.controls["noise_profile"].value = path
        show_info(f"Zero-shot denoise: noise profile of {layer.name} saved to {path}: {profile.describe()}")
        for caution in profile.cautions():
            show_warning(f"Zero-shot denoise: noise profile: {caution}")
        return str(path)

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
        data = full_resolution(layer)
        try:
            params = self.params()
            axes = resolve_axes(np.shape(data), self.axes.value.strip().upper() or None, layer.rgb)
            device = resolve_device(params.device)  # fail here, before a thread starts
        except USER_ERRORS as exc:
            show_error(f"Zero-shot denoise: {exc}")
            return None
        self._eta = self._eta_tracker(data, params, axes, device)

        if is_in_memory(data):
            # The worker never sees the layer: editing it during the run changes nothing.
            image, out, noise_out = np.array(data, copy=True), None, None
        else:
            # Lazy data (dask, zarr, a memory map) is read plane by plane on the worker thread, and
            # the results go to disk, so that neither is ever whole in memory.
            image = data
            out, noise_out = PlaneStore(np.shape(data), axes, "denoised"), PlaneStore(np.shape(data), axes, "noise")
        preview_every = max(1, params.iterations // PREVIEWS_PER_PLANE) if self.live_preview.value else None
        worker = thread_worker(_run, start_thread=False)(image, params, axes, preview_every, out, noise_out)
        # Warnings raised in the thread come here instead of straight to the notifications, so
        # that one also recorded in the result (or raised once per plane) is shown only once.
        try:
            worker.warned.disconnect()
        except (TypeError, RuntimeError):  # nothing was connected
            pass
        worker.warned.connect(self._on_warned)
        self._warned = set()
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
        self.status.tooltip = None
        self._close_activity()
        # Its cancel button only sets ``is_canceled`` (the callback is for iterating bars): see _on_progress.
        self._activity = cancelable_progress(total=STEPS, desc=f"Zero-shot denoise: {layer.name}")
        if start:
            worker.start()
        return worker

    def _eta_tracker(self, data: Any, params: FillParams, axes: str, device: torch.device) -> EtaTracker:
        """The run's ETA, started from the estimate shown before Run (none if planning fails: the worker says why)."""
        try:
            model = self._model_for_planning(params)
            plan = api.plan(np.shape(data), data.dtype, params, model=model, device=device, axes=axes)
        except USER_ERRORS:
            return EtaTracker(None)
        return eta_tracker(plan, device, data)

    def cancel(self) -> None:
        """Stop the running worker after its current iteration; no layer is changed."""
        if self.worker is not None and self.worker.is_running:
            self.status.value = "cancelling..."
            self.cancel_button.enabled = False
            self.worker.quit()

    def _quit_worker(self) -> None:
        # The Qt widgets may already be gone here: touch only the workers.
        if self.worker is not None and self.worker.is_running:
            self.worker.quit()
        if self.calibration_worker is not None:  # its few seconds end on their own; no estimate to redo
            try:
                self.calibration_worker.finished.disconnect(self._on_calibrated)
            except (TypeError, RuntimeError):  # already disconnected
                pass

    def _set_running(self, running: bool) -> None:
        self.run_button.enabled = not running
        self.cancel_button.enabled = running

    def _on_progress(self, step: Progress) -> None:
        if self._activity is not None and self._activity.is_canceled:  # cancelled in the activity dock
            self.cancel()
        value = round(step.fraction * STEPS)
        self.progress.value = value
        eta = self._eta.update(step.elapsed, step.fraction) if self._eta is not None else step.eta
        self.status.value = progress_text(step, eta)
        if step.preview is not None and self._source is not None:
            self._show_preview(step.preview)
        # Last: napari's activity bar processes pending events when it changes, so the
        # worker's later signals (even ``returned``) may run inside this call.
        if self._activity is not None and value > self._activity.n:
            self._activity.update(value - self._activity.n)

    def _close_activity(self) -> None:
        if self._activity is not None:
            self._activity.close()
            self._activity = None

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

    def _warn(self, message: str) -> None:
        """Show a warning of the current run, unless it was already shown."""
        if message not in self._warned:
            self._warned.add(message)
            show_warning(f"Zero-shot denoise: {message}")

    def _on_warned(self, shown: tuple) -> None:
        # The arguments of warnings.showwarning: (message, category, filename, lineno, ...).
        self._warn(str(shown[0]))

    def _on_returned(self, outcome: DenoiseResult | _Failed) -> None:
        self._remove_preview()
        if isinstance(outcome, _Failed):
            self.status.value = "failed: see the message at the bottom right"
            show_error(f"Zero-shot denoise: {outcome.message}")
            return
        if self._source is None or self._source not in self.viewer.layers:
            self.status.value = "input layer was removed; result discarded"
            show_warning("Zero-shot denoise: the input layer was removed during the run; result discarded.")
            return
        publish(self.viewer, self._source, outcome)
        for message in outcome.warnings:
            self._warn(message)
        self.progress.value = STEPS
        # What was done, in plain words: the first sentence here, the whole when hovering
        # (and in the result layers' metadata, "summary").
        summary = result_summary(outcome)
        self.status.value = first_sentence(summary)
        self.status.tooltip = wrap_tooltip(summary)
        show_info(f"Zero-shot denoise: {self._source.name}: {summary}")

    def _on_aborted(self) -> None:
        self._remove_preview()
        self.progress.value = 0
        self.status.value = "cancelled"

    def _on_errored(self, exc: Exception) -> None:
        # napari's worker already reports the exception (with traceback) to
        # the notification manager: an unexpected error is a bug to report.
        self._remove_preview()
        self.status.value = f"failed with an unexpected error ({type(exc).__name__}): please report it"

    def _on_finished(self) -> None:
        self._close_activity()
        self._set_running(False)
        if self._calibration_deferred:
            self._calibration_deferred = False
            self._describe()
