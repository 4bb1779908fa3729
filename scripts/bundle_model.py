"""Copy a trained checkpoint into the package as a bundled model and record its SHA-256.

Usage: python scripts/bundle_model.py CHECKPOINT NAME "one-line summary"

Writes src/napari_mpid/models/<name>.pt (weights and metadata only, float32,
no optimizer state) and updates registry.json, which load_model() checks the
file against on every load.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.torch_version import TorchVersion

from napari_mpid.core.model.checkpoints import FORMAT, FORMAT_VERSION, file_sha256

MODELS = Path(__file__).resolve().parents[1] / "src" / "napari_mpid" / "models"


def _plain(value):
    """Metadata as plain Python values (readable with weights_only=True)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)  # also turns str subclasses (TorchVersion) into plain str
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    return str(value)


def main(checkpoint: str, name: str, summary: str) -> None:
    # Checkpoints written before 0.1.0 stored torch.__version__ as a TorchVersion.
    with torch.serialization.safe_globals([TorchVersion]):
        raw = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = {k: v.float().contiguous() if v.is_floating_point() else v for k, v in raw["state_dict"].items()}
    meta = _plain(raw["metadata"])
    meta["bundled_as"] = name
    out = MODELS / f"{name.replace('-', '_')}.pt"
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "state_dict": state, "metadata": meta}, out)
    registry_path = MODELS / "registry.json"
    registry = json.loads(registry_path.read_text())
    registry[name] = {"file": out.name, "sha256": file_sha256(out), "summary": summary}
    registry_path.write_text(json.dumps(registry, indent=2, sort_keys=True) + "\n")
    print(f"{out} ({out.stat().st_size / 1e6:.2f} MB) sha256={registry[name]['sha256']}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
