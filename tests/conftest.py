"""Shared fixtures: reference data from ../shared (skipped when absent), seeds, devices."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ANCHORS = SHARED / "anchors" / "mpi_official"


@pytest.fixture
def anchors() -> Path:
    """The MPI authors' checkpoints and golden vectors (read-only, never copied)."""
    if not (ANCHORS / "ckpts").is_dir():
        pytest.skip("../shared/anchors/mpi_official is not available")
    return ANCHORS


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield


@pytest.fixture(params=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def device(request) -> str:
    """CPU always, CUDA too when present."""
    return request.param


@pytest.fixture
def tiny_model() -> str:
    """An untrained single-mask gray model: no bundled file needed, fast."""
    return "random-init:1:single"
