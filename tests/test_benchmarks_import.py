"""Every script in benchmarks/ still imports, and does its work only when run.

The benchmarks are measurements run by hand, not tests, so nothing else
notices when a refactoring of the package breaks one (a script that imports
a function since deleted). Importing each file catches that in seconds
without running a measurement or reading ../shared.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))


@pytest.fixture
def benchmarks_importable(monkeypatch, tmp_path):
    """benchmarks/ on sys.path (the scripts import each other by name) and no evaluation data.

    Modules loaded from benchmarks/ are dropped afterwards so that their
    generic names (``stacks``, ``table``) do not outlive the test.
    """
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    # Any script that reads data at import time fails on this missing folder.
    monkeypatch.setenv("MPID_EVAL_DIR", str(tmp_path / "no-data-here"))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(BENCHMARKS)):
            del sys.modules[name]


def _is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":``"""
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in node.test.comparators)
    )


def test_benchmark_scripts_exist():
    assert len(SCRIPTS) > 5, f"expected the benchmark scripts in {BENCHMARKS}"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_script_imports_without_running(path, benchmarks_importable):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except SystemExit as stop:  # e.g. argparse reading pytest's command line at import time
        pytest.fail(f"{path.name} ran its command line at import time (exit {stop.code}): guard it with __main__")


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_script_runs_main_only_as_a_script(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defines_main = any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body)
    guarded = any(_is_main_guard(node) for node in tree.body)
    assert guarded or not defines_main, f'{path.name}: main() without `if __name__ == "__main__":`'


def test_missing_evaluation_data_is_named_in_the_error(benchmarks_importable, tmp_path):
    import _common

    with pytest.raises(FileNotFoundError, match="MPID_EVAL_DIR") as error:
        _common.eval_dir("fmd_test_mix")
    assert str(tmp_path / "no-data-here" / "fmd_test_mix") in str(error.value)


def test_psnr_clips_the_estimate_and_uses_data_range_one(benchmarks_importable):
    import _common

    clean = np.full((8, 8), 0.5)
    assert _common.psnr(clean + 0.1, clean) == pytest.approx(20.0)  # MSE 0.01
    # Above 1 the estimate is clipped: 1.5 scores as 1.0 against 0.9 (MSE 0.01).
    assert _common.psnr(np.full((8, 8), 1.5), np.full((8, 8), 0.9)) == pytest.approx(20.0)


def test_gain_matched_psnr_forgives_a_global_brightness_change(benchmarks_importable):
    import _common

    clean = np.random.default_rng(0).uniform(0.1, 0.6, (16, 16))
    assert _common.psnr(1.1 * clean, clean) < 30
    assert _common.psnr_gain_matched(1.1 * clean, clean) > 100


def test_residual_autocorrelation_reads_a_known_blur_of_white_noise(benchmarks_importable):
    """The helper behind docs' "gt's autocorrelation": blurred white noise of known lags."""
    import _common

    rng = np.random.default_rng(3)
    white = rng.standard_normal((256, 256))
    acf = _common.residual_autocorrelation(white, 3)
    assert acf.shape == (7, 7) and acf[3, 3] == pytest.approx(1.0)
    assert np.abs(np.delete(acf.ravel(), 24)).max() < 0.02  # white: 0 at every other lag
    # [s, 1, s] along x only (circular, so every lag has all its pairs): lag-1 2s / (1 + 2s^2), lag-2 s^2 / (1 + 2s^2).
    s = 0.5
    blurred = white + s * (np.roll(white, 1, axis=1) + np.roll(white, -1, axis=1))
    acf = _common.residual_autocorrelation(blurred, 3)
    norm = 1 + 2 * s * s
    assert acf[3, 4] == pytest.approx(2 * s / norm, abs=0.02)
    assert acf[3, 5] == pytest.approx(s * s / norm, abs=0.02)
    assert acf[4, 3] == pytest.approx(0.0, abs=0.02)  # nothing along y
    assert acf[3, 2] == pytest.approx(acf[3, 4])  # symmetric
