"""The layering rules: the core never imports Qt/napari, the reader never imports torch."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "statement",
    [
        "import napari_mpid",
        "import napari_mpid.core.engine, napari_mpid.core.model.pretrain, napari_mpid.api, napari_mpid.cli",
    ],
)
def test_core_and_api_do_not_import_qt_or_napari(statement):
    loaded = _modules_after(statement)
    assert not {m for m in loaded if m.split(".")[0] in ("napari", "qtpy", "PyQt6", "PyQt5", "PySide6", "magicgui")}


def test_package_import_is_light():
    assert "torch" not in _modules_after("import napari_mpid")
