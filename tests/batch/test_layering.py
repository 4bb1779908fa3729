"""The layers above the core: files/ below batch/, no import cycles, neither imports torch when imported."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import napari_mpid

PACKAGE = Path(napari_mpid.__file__).parent
LAYERS = ("files", "batch")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every napari_mpid module a file imports, at its top or inside a function."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}  # "from . import journal"
    return {m for m in found if m.startswith("napari_mpid.")}


def _graph() -> dict[str, set[str]]:
    files = [p for layer in LAYERS for p in sorted((PACKAGE / layer).glob("*.py"))]
    modules = {_module_name(p): p for p in files}
    return {name: _imports(path) & set(modules) - {name} for name, path in modules.items()}


def test_files_never_imports_the_batch_layer():
    graph = _graph()
    upward = {(m, d) for m in graph if m.startswith("napari_mpid.files") for d in graph[m] if ".batch" in d}

    assert not upward


def test_the_file_and_batch_modules_import_each_other_without_cycles():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            assert state.get(dep) != 1, " -> ".join([*path, module, dep])
            if dep not in state:
                visit(dep, [*path, module])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [])


@pytest.mark.parametrize(
    "modules",
    [
        "napari_mpid.files, napari_mpid._reader, napari_mpid._writer",
        "napari_mpid.batch.jobs, napari_mpid.batch.run, napari_mpid.batch.journal, napari_mpid.batch.report, "
        "napari_mpid.batch.cluster",
    ],
)
def test_file_and_batch_modules_import_neither_torch_qt_nor_dask(modules):
    code = f"import sys, {modules}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())

    assert not {m.split(".")[0] for m in loaded} & {"torch", "napari", "qtpy", "PyQt6", "dask", "distributed"}
