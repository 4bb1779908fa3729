"""The import contract: floors that only import downwards, no cycles, api as the door to the core.

Every ``import`` of a napari_mpid module is read from the source (those inside
functions too, which is where cycles used to hide), so the contract holds
whatever a run happens to import.

Floors, lowest first (a module imports its own floor and the ones below)::

    core:  base modules (errors, params, noise, masks, ...) < model < run < fill < auto < results < engine
    above: core < files < api < batch < cli, _qt, napari hooks

The CLI and the widget reach the core through :mod:`napari_mpid.api` only;
the parameter, result and error types they may also import directly.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import napari_mpid

PACKAGE = Path(napari_mpid.__file__).parent

#: Floors inside the core, lowest first: a module's floor is the first prefix it starts with.
CORE_FLOORS = (
    "napari_mpid.core.model",
    "napari_mpid.core.run",
    "napari_mpid.core.fill",
    "napari_mpid.core.auto",
    "napari_mpid.core.results",
    "napari_mpid.core.engine",
)
#: Floors of the package, lowest first; each entry is a tuple of prefixes on one floor.
PACKAGE_FLOORS = (
    ("napari_mpid.core", "napari_mpid.synthetic"),
    ("napari_mpid.files",),
    ("napari_mpid.api",),
    ("napari_mpid.batch",),
    (
        "napari_mpid.cli",
        "napari_mpid._qt",
        "napari_mpid._reader",
        "napari_mpid._writer",
        "napari_mpid._sample_data",
        "napari_mpid._launch",
    ),
)
#: What the CLI and the widget may import from the core besides going through api.
CORE_TYPES = ("napari_mpid.core.params", "napari_mpid.core.results", "napari_mpid.core.errors")


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    """The napari_mpid modules that module ``name`` imports anywhere in its source."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}  # "from package import module"
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name) for name in MODULES}


def _floor(name: str, floors: tuple) -> int | None:
    for rank, prefixes in enumerate(floors):
        prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return rank
    return None


def test_the_graph_sees_the_whole_package():
    assert len(MODULES) > 60
    assert "napari_mpid.core.engine.dispatch" in GRAPH["napari_mpid.core.engine"]


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[str] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(GRAPH[module]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*path, module, dep]))
            elif dep not in state:
                visit(dep, [*path, module])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [])

    assert not cycles


def test_core_imports_nothing_outside_core():
    outside = {
        (m, d)
        for m in GRAPH
        if m.startswith("napari_mpid.core")
        for d in GRAPH[m]
        if not d.startswith("napari_mpid.core")
    }

    assert not outside


def _upward(floors: tuple, within: str) -> set[tuple[str, str]]:
    found = set()
    for module, deps in GRAPH.items():
        if not module.startswith(within) or module == "napari_mpid":  # the root only exports, lazily
            continue
        own = _floor(module, floors)
        for dep in deps:
            theirs = _floor(dep, floors)
            if theirs is not None and (own is None or theirs > own):
                found.add((module, dep))
    return found


def test_core_modules_import_only_their_floor_and_below():
    # Base modules (core/*.py but results) sit below every sub-package: any import of a floor from them is upward.
    assert not _upward(CORE_FLOORS, "napari_mpid.core")


def test_package_layers_import_only_their_floor_and_below():
    assert not _upward(PACKAGE_FLOORS, "napari_mpid")


@pytest.mark.parametrize("door", ["napari_mpid.cli", "napari_mpid._qt"])
def test_cli_and_widget_reach_the_core_through_api(door):
    reached = {
        (m, d)
        for m in GRAPH
        if m == door or m.startswith(door + ".")
        for d in GRAPH[m]
        if d.startswith("napari_mpid.core") and not d.startswith(CORE_TYPES)
    }

    assert not reached


def test_the_contract_fails_on_a_hidden_cycle(monkeypatch):
    """The checks can fail: a function-local import from noise up to the engine is upward and closes a cycle."""
    monkeypatch.setitem(GRAPH, "napari_mpid.core.noise", GRAPH["napari_mpid.core.noise"] | {"napari_mpid.core.engine"})

    assert ("napari_mpid.core.noise", "napari_mpid.core.engine") in _upward(CORE_FLOORS, "napari_mpid.core")
    with pytest.raises(AssertionError):
        test_no_import_cycles()
