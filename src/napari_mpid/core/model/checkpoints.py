"""Checkpoints: our own format, the MPI authors' format, and the bundled models.

Our format is a ``torch.save`` dictionary that loads with
``torch.load(weights_only=True)``::

    {"format": "napari-mpid", "format_version": 1,
     "state_dict": {...},           # SkipNetwork names, float32
     "metadata": {...}}             # plain Python values, see ModelInfo

Training checkpoints (``napari-mpid pretrain``) add ``"training"`` with the
optimizer, schedule, step and RNG states so that a run can be resumed.

The authors' checkpoints hold the state dict under ``"params"`` with their
nested ``Sequential`` names; they are converted with
:func:`~napari_mpid.core.model.network.convert_reference_state_dict`. Their shapes
tell the architecture: first-layer inputs 2C (per-channel masks) or C + 1
(shared mask).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from napari_mpid.core.errors import CheckpointError
from napari_mpid.core.model.network import SkipNetwork, convert_reference_state_dict

__all__ = [
    "CheckpointError",
    "LoadedModel",
    "bundled_model_path",
    "file_sha256",
    "load_model",
    "save_checkpoint",
]

FORMAT = "napari-mpid"
FORMAT_VERSION = 1
_REGISTRY = "registry.json"


@dataclass
class LoadedModel:
    """A network with its pre-trained state and where it came from.

    Attributes
    ----------
    network : SkipNetwork
        On the requested device.
    state : dict
        The pre-trained state dict (on the device), restored before every plane.
    source : str
        Bundled model name or file path.
    sha256 : str
        SHA-256 of the checkpoint file.
    metadata : dict
        Architecture, training budget and provenance.
    """

    network: SkipNetwork
    state: dict[str, torch.Tensor]
    source: str
    sha256: str
    metadata: dict[str, Any] = field(default_factory=dict)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundled_models() -> dict[str, dict[str, str]]:
    """The bundled models by name, as ``models/registry.json`` lists them (file, sha256, summary)."""
    text = resources.files("napari_mpid.models").joinpath(_REGISTRY).read_text()
    return json.loads(text)


def bundled_model_path(name: str) -> tuple[Path, str]:
    """Path and recorded SHA-256 of a bundled model.

    Raises
    ------
    CheckpointError
        If ``name`` is not a bundled model.
    """
    registry = bundled_models()
    if name not in registry:
        raise CheckpointError(f"unknown bundled model {name!r}; available: {', '.join(sorted(registry))}")
    entry = registry[name]
    path = Path(str(resources.files("napari_mpid.models").joinpath(entry["file"])))
    return path, entry["sha256"]


def architecture_from_state(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Infer channels and mask mode from our state-dict names and shapes."""
    first = state["encoder_decoder.skip.conv.weight"]
    channels = int(state["head.weight"].shape[0])
    in_channels = int(first.shape[1])
    width = int(first.shape[0])
    scales = sum(1 for k in state if k.endswith("skip.conv.weight"))
    if in_channels == 2 * channels and channels > 1:
        multi = True
    elif in_channels == channels + 1:
        multi = False
    else:
        raise CheckpointError(f"cannot infer the mask mode: {in_channels} inputs for {channels} channels")
    return {"channels": channels, "multi_channel_mask": multi, "width": width, "scales": scales}


#: What every file that is not a checkpoint is told (torch's own message is about its
#: ``weights_only`` option, which is not the user's problem: the file is not a model).
_NOT_A_CHECKPOINT = "it is not a napari-mpid or MPI checkpoint"


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except IsADirectoryError:
        raise CheckpointError(f"cannot read checkpoint {path}: it is a folder, not a checkpoint file") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    except Exception:  # pickle errors, truncated files, foreign formats, pickled objects
        raise CheckpointError(
            f"cannot read checkpoint {path}: {_NOT_A_CHECKPOINT} (those are PyTorch files of tensors and plain values)"
        ) from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: {_NOT_A_CHECKPOINT} (it holds a {type(raw).__name__}, not a dictionary)")
    return raw


def load_model(
    name_or_path: str | Path,
    device: torch.device | str = "cpu",
    *,
    verify: bool = True,
) -> LoadedModel:
    """Load a bundled model by name, or a checkpoint file (ours or the authors').

    Parameters
    ----------
    name_or_path : str or Path
        "real-noise", "pixel-independent", "random-init:<C>:<single|multi>" (an
        untrained network, for ablations) or a file path.
    device : torch.device or str
        Where the network is placed.
    verify : bool
        Check a bundled file against the SHA-256 in the package registry.

    Raises
    ------
    CheckpointError
        Unknown name, missing/corrupt file, failed SHA-256 check, or a state
        dict that does not fit the network exactly (strict load).
    """
    spec = str(name_or_path)
    if spec.startswith("random-init"):
        _, channels, mode = ([*spec.split(":"), "3", "single"])[:3]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same "random" network every time, for fair ablations
            net = SkipNetwork(int(channels), mode == "multi")
        state = {k: v.clone() for k, v in net.state_dict().items()}
        meta = {
            "architecture": {"channels": int(channels), "multi_channel_mask": mode == "multi"},
            "note": "random initialisation (torch default, seed 0), no pre-training",
        }
        return _place(net, state, spec, "", meta, device)

    try:
        path, expected = bundled_model_path(spec)
    except CheckpointError:
        if Path(spec).suffix or Path(spec).exists() or "/" in spec or "\\" in spec:
            path, expected = Path(spec).expanduser(), None
        else:
            raise
    sha = file_sha256(path) if path.is_file() else ""
    if verify and expected is not None and sha != expected:
        raise CheckpointError(
            f"bundled model {spec!r} failed its SHA-256 check ({path.name}: expected {expected[:12]}..., "
            f"got {sha[:12]}...); the installation is damaged, reinstall napari-mpid"
        )
    raw = _read(path)
    if raw.get("format") == FORMAT:
        state = raw["state_dict"]
        meta = dict(raw.get("metadata", {}))
    elif "params" in raw:
        try:
            state = convert_reference_state_dict(raw["params"])
        except KeyError as exc:
            raise CheckpointError(f"{path}: not an MPI skip-network checkpoint ({exc})") from None
        meta = {"format": "MPI reference (Ma et al. 2024)"}
    else:
        raise CheckpointError(f"{path}: {_NOT_A_CHECKPOINT} (neither 'format' nor 'params' in it)")
    try:
        arch = architecture_from_state(state)
    except (KeyError, AttributeError, IndexError, TypeError) as exc:
        raise CheckpointError(f"{path}: {_NOT_A_CHECKPOINT} (no skip-network weights: {exc})") from None
    meta.setdefault("architecture", arch)
    net = SkipNetwork(arch["channels"], arch["multi_channel_mask"], arch["width"], arch["scales"])
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the network: {exc}") from None
    return _place(net, state, spec, sha, meta, device)


def _place(net: SkipNetwork, state: dict, source: str, sha: str, meta: dict, device) -> LoadedModel:
    net = net.to(device)
    state = {k: v.detach().to(device).clone() for k, v in state.items()}
    return LoadedModel(network=net, state=state, source=source, sha256=sha, metadata=meta)


def save_checkpoint(
    path: str | Path,
    network: SkipNetwork,
    metadata: dict[str, Any],
    training: dict[str, Any] | None = None,
) -> str:
    """Write a checkpoint in our format and return its SHA-256.

    ``metadata`` must hold plain Python values (it is read back with
    ``weights_only=True``); the architecture is added automatically.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in network.state_dict().items()}
    meta = dict(metadata)
    meta["architecture"] = {
        "channels": network.channels,
        "multi_channel_mask": network.multi_channel_mask,
        "width": network.width,
        "scales": network.scales,
    }
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "state_dict": state,
        "metadata": meta,
    }
    if training is not None:
        payload["training"] = training
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return file_sha256(path)
