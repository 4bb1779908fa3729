"""magicgui controls built from the fields of :class:`~napari_mpid.core.params.FillParams`.

Every control takes its type, bounds, choices, default and tooltip from the
dataclass field, its ``metadata`` and the class docstring (the one-line help,
then the field's paragraph under "Attributes"); nothing here repeats a
parameter's range or help text. Only the presentation differs per field: a
label in the paper's terms (:data:`LABELS`), what a spin box shows at the
value that means "decide automatically" (:data:`SPECIAL_TEXT`), a model
picker with a file chooser, a device list limited to what this machine has.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import textwrap
from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, LineEdit, SpinBox, Widget

from napari_mpid.core.params import BUNDLED_MODELS, FillParams, field_kind

__all__ = [
    "AUTOMATIC_TEXT",
    "CHECKPOINT_CHOICE",
    "LABELS",
    "MODEL_DEFAULT_TEXT",
    "SPECIAL_TEXT",
    "ModelPicker",
    "OptionalFileEdit",
    "OptionalFloatBox",
    "OptionalIntBox",
    "WholeNumberBox",
    "device_tooltip",
    "field_control",
    "field_docs",
    "field_tooltip",
    "fill_fields",
    "label_of",
    "narrow_combo",
    "wrap_tooltip",
]

#: Entry of the model list that reveals the checkpoint file picker.
CHECKPOINT_CHOICE = "checkpoint file..."
#: What an optional float control shows when it is left to the model.
MODEL_DEFAULT_TEXT = "model's own"
#: What a control shows at the value that lets the run decide.
AUTOMATIC_TEXT = "automatic"
#: Labels that differ from the field name with spaces (the paper's terms where it has one).
LABELS = {
    "beta": "beta (EMA weight)",
    "iterations": "iterations T",
    "context": "neighbour planes",
    "context_axis": "neighbours along",
    "static_scene": "repeated exposures (static scene)",
    "adaptive": "adaptive (auto preset)",
    "memory_limit": "memory limit (GiB)",
    "noise_profile": "noise profile (calibrated)",
}
#: Text shown at a spin box's lowest position: None for optional fields, 0 for the others listed.
SPECIAL_TEXT = {
    "mask_ratio": MODEL_DEFAULT_TEXT,
    "context": AUTOMATIC_TEXT,
    "tile_size": AUTOMATIC_TEXT,
    "stack_planes": AUTOMATIC_TEXT,
    "memory_limit": AUTOMATIC_TEXT,
}


def fill_fields() -> dict[str, dataclasses.Field]:
    """The fields of FillParams by name, in declaration order."""
    return {f.name: f for f in dataclasses.fields(FillParams)}


@functools.cache
def field_docs() -> dict[str, str]:
    """Each FillParams field's paragraph of the class docstring's "Attributes" section, as one line."""
    lines = inspect.cleandoc(FillParams.__doc__ or "").splitlines()
    docs: dict[str, list[str]] = {}
    names: list[str] = []
    inside = False
    for i, line in enumerate(lines):
        underlined = i + 1 < len(lines) and lines[i + 1].strip() and set(lines[i + 1].strip()) == {"-"}
        if underlined:  # a section header: only "Attributes" is read
            inside, names = line.strip() == "Attributes", []
        elif not inside or set(line.strip()) <= {"-"}:
            continue
        elif not line.startswith(" "):  # "name : type" (or "a, b : type")
            names = [n.strip() for n in line.split(":")[0].split(",")]
            for name in names:
                docs[name] = []
        else:
            for name in names:
                docs[name].append(line.strip())
    return {name: " ".join(words) for name, words in docs.items()}


def wrap_tooltip(text: str, width: int = 80) -> str:
    """``text`` with its lines wrapped at ``width`` characters: Qt does not wrap plain-text tooltips."""
    wrap = textwrap.TextWrapper(width, break_long_words=False, break_on_hyphens=False)
    return "\n".join(wrap.fill(line) if line else "" for line in text.splitlines())


def field_tooltip(f: dataclasses.Field, help_text: str | None = None) -> str:
    """A control's tooltip: the field's help (or ``help_text``), then its docstring paragraph.

    The help line is kept whole so that it can be found in the tooltip; the
    longer paragraph is wrapped.
    """
    first = help_text or f.metadata["help"]
    doc = field_docs().get(f.name, "")
    return f"{first}\n\n{wrap_tooltip(doc)}" if doc else first


def _decimals(*values: float) -> int:
    """Decimals a spin box needs to show every one of ``values`` exactly."""
    needed = 2
    for v in values:
        text = f"{v:.10f}".rstrip("0")
        needed = max(needed, len(text.split(".")[1]) if "." in text else 0)
    return min(needed, 10)


def label_of(name: str) -> str:
    """The label of the control of field ``name``."""
    return LABELS.get(name, name.replace("_", " "))


def _float_box(name: str, f: dataclasses.Field, tooltip: str) -> FloatSpinBox:
    lo, hi = f.metadata["min"], f.metadata["max"]
    box = FloatSpinBox(name=name, label=label_of(name), tooltip=tooltip)
    # Set the decimals before the bounds and value, or Qt rounds them (0.9999 -> 1.0).
    digits = _decimals(lo, hi, f.default)
    box.native.setDecimals(digits)
    box.min, box.max = lo, hi
    box.step = 10.0 ** -min(digits, 3) if hi <= 1 else 0.1
    box.value = f.default
    if name in SPECIAL_TEXT:
        box.native.setSpecialValueText(SPECIAL_TEXT[name])
    return box


def field_control(
    f: dataclasses.Field, *, choices: tuple[str, ...] | None = None, tooltip: str | None = None
) -> Widget:
    """A magicgui widget for one FillParams field (type, bounds, default, help).

    Parameters
    ----------
    f : dataclasses.Field
        A field of FillParams.
    choices : tuple of str, optional
        Overrides ``f.metadata["choices"]`` (e.g. the devices present here).
    tooltip : str, optional
        Overrides the field's help text (which it should extend, not replace).
    """
    name = f.name
    tip = tooltip or field_tooltip(f)
    label = label_of(name)
    kind = field_kind(f)
    if kind == "bool":
        return CheckBox(name=name, text=label, tooltip=tip, value=f.default)
    if kind == "float" and f.default is None:
        return OptionalFloatBox(f, tip)
    if kind == "int" and f.default is None:
        return OptionalIntBox(f, tip)
    if kind == "int" and name in SPECIAL_TEXT:
        return WholeNumberBox(f, tip)
    if kind == "int":
        return SpinBox(
            name=name, label=label, tooltip=tip, value=f.default, min=f.metadata["min"], max=f.metadata["max"]
        )
    if kind == "float":
        return _float_box(name, f, tip)
    if f.metadata.get("path"):
        return OptionalFileEdit(f, tip)
    options = choices if choices is not None else f.metadata.get("choices")
    if options:
        return ComboBox(name=name, label=label, tooltip=tip, choices=list(options), value=f.default)
    return LineEdit(name=name, label=label, tooltip=tip, value=f.default)


class OptionalFloatBox(FloatSpinBox):
    """A float field whose default, None, means "the model's own value" (or "automatic").

    The spin box's lowest position (0, below the field's minimum) stands for
    None and shows :data:`SPECIAL_TEXT` (:data:`MODEL_DEFAULT_TEXT` for the
    mask ratio); ``value`` is None there and a float elsewhere.
    """

    def __init__(self, f: dataclasses.Field, tooltip: str) -> None:
        super().__init__(name=f.name, label=label_of(f.name), tooltip=tooltip)
        digits = _decimals(f.metadata["min"], f.metadata["max"])
        self.native.setDecimals(digits)
        self.min, self.max = 0.0, f.metadata["max"]
        self.step = 10.0 ** -min(digits, 3) if f.metadata["max"] <= 1 else 0.1
        self.native.setSpecialValueText(SPECIAL_TEXT.get(f.name, AUTOMATIC_TEXT))
        self._floor = f.metadata["min"]
        FloatSpinBox.value.fset(self, 0.0)

    @property  # type: ignore[override]
    def value(self) -> float | None:
        number = FloatSpinBox.value.fget(self)
        return None if number < self._floor else number

    @value.setter
    def value(self, number: float | None) -> None:
        FloatSpinBox.value.fset(self, 0.0 if number is None else number)


class WholeNumberBox(FloatSpinBox):
    """An int field whose lowest value shows a text (:data:`SPECIAL_TEXT`), e.g. "automatic" at 0.

    A float spin box without decimals: magicgui's int spin box (superqt's
    ``QLargeIntSpinBox``) cannot show a special value text.
    """

    def __init__(self, f: dataclasses.Field, tooltip: str, *, lowest: int | None = None) -> None:
        super().__init__(name=f.name, label=label_of(f.name), tooltip=tooltip)
        self.native.setDecimals(0)
        self.min = f.metadata["min"] if lowest is None else lowest
        self.max = f.metadata["max"]
        self.step = 1
        self.native.setSpecialValueText(SPECIAL_TEXT.get(f.name, AUTOMATIC_TEXT))
        FloatSpinBox.value.fset(self, self.min if f.default is None else f.default)

    @property  # type: ignore[override]
    def value(self) -> int:
        return round(FloatSpinBox.value.fget(self))

    @value.setter
    def value(self, number: int) -> None:
        FloatSpinBox.value.fset(self, number)


class OptionalIntBox(WholeNumberBox):
    """An int field whose default, None, means "decide automatically".

    The spin box's lowest position (one below the field's minimum, e.g. -1
    when 0 is a valid value) stands for None and shows :data:`SPECIAL_TEXT`
    (:data:`AUTOMATIC_TEXT`); ``value`` is None there and an int elsewhere.
    """

    def __init__(self, f: dataclasses.Field, tooltip: str) -> None:
        self._floor = f.metadata["min"]
        super().__init__(f, tooltip, lowest=self._floor - 1)

    @property  # type: ignore[override]
    def value(self) -> int | None:
        number = round(FloatSpinBox.value.fget(self))
        return None if number < self._floor else number

    @value.setter
    def value(self, number: int | None) -> None:
        FloatSpinBox.value.fset(self, self._floor - 1 if number is None else number)


class ModelPicker(Container):
    """The ``model`` field: a bundled model, or a checkpoint file chosen with a file picker.

    ``value`` is what FillParams.model takes: a bundled name, a file path, or a
    model spec such as ``"random-init:1:single"`` (added to the list when set).
    """

    def __init__(self, f: dataclasses.Field) -> None:
        tip = field_tooltip(f)
        #: Model specs set programmatically (e.g. "random-init:1:single"), listed after the bundled ones.
        self.specs: list[str] = []
        # Choices from a callable, so that napari's reset_choices (on every layer change) keeps the specs.
        self.choice = ComboBox(
            name="model",
            label="model",
            tooltip=tip,
            choices=lambda _: [*BUNDLED_MODELS, *self.specs, CHECKPOINT_CHOICE],
            value=f.default,
        )
        self.file = FileEdit(
            name="checkpoint",
            label="checkpoint",
            mode="r",
            filter="Checkpoints (*.pt *.pth *.ckpt);;All files (*)",
            tooltip="Checkpoint file (ours or the MPI authors' format).",
            visible=False,
        )
        super().__init__(name="model", widgets=[self.choice, self.file], labels=False, tooltip=tip)
        self.margins = (0, 0, 0, 0)
        narrow_combo(self.choice)
        self.choice.changed.connect(self._on_choice)

    def _on_choice(self, value: str) -> None:
        self.file.visible = value == CHECKPOINT_CHOICE

    @property
    def value(self) -> str:
        if self.choice.value == CHECKPOINT_CHOICE:
            path = self.file.value
            return str(path) if path and str(path) not in ("", ".") else ""
        return str(self.choice.value)

    @value.setter
    def value(self, spec: str | Path) -> None:
        spec = str(spec)
        choices = list(self.choice.choices)
        if spec in choices and spec != CHECKPOINT_CHOICE:
            self.choice.value = spec
        elif Path(spec).is_file():
            self.choice.value = CHECKPOINT_CHOICE
            self.file.value = spec
        else:  # a model spec the loader understands, e.g. "random-init:1:single"
            self.specs.append(spec)
            self.choice.reset_choices()
            self.choice.value = spec


class OptionalFileEdit(FileEdit):
    """A file field whose default, None, means "none": an empty path reads as None.

    magicgui's FileEdit reads an empty entry as the current folder, which a
    run would take for a file; here it is None.
    """

    def __init__(self, f: dataclasses.Field, tooltip: str) -> None:
        super().__init__(
            name=f.name,
            label=label_of(f.name),
            mode="r",
            filter=f.metadata.get("filter", "All files (*)"),
            tooltip=tooltip,
        )

    @property
    def value(self) -> str | None:  # type: ignore[override]
        # The typed text, not FileEdit's path: that resolves an empty entry to the working folder.
        text = str(self.line_edit.value).strip()
        return text or None

    @value.setter
    def value(self, path: str | Path | None) -> None:
        self.line_edit.value = "" if path is None else str(path)


def narrow_combo(combo: Widget, characters: int = 8) -> None:
    """Let a combo box be narrower than its longest entry (a long layer name must not widen the dock)."""
    from qtpy.QtWidgets import QComboBox

    native = combo.native
    native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    native.setMinimumContentsLength(characters)


def device_tooltip(help_text: str, devices: list[str]) -> str:
    """The device field's help plus why a GPU may be missing from the list."""
    lines = [help_text, "Only devices usable on this machine are listed."]
    if not any(d.startswith("cuda") for d in devices):
        import torch

        if torch.version.cuda is None:
            reason = "the installed PyTorch was built without CUDA (a CPU-only wheel)"
        else:
            reason = "PyTorch has CUDA support but found no NVIDIA GPU or driver"
        lines.append(
            f"No CUDA GPU: {reason}. Install a CUDA build of PyTorch from pytorch.org "
            "and check `nvidia-smi` to use an NVIDIA GPU."
        )
    return wrap_tooltip("\n".join(lines))
