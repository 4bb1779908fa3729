"""The one typed parameter object shared by the Python API, the CLI and the widget.

Every field carries its help text, bounds and (where relevant) choices in
``dataclasses.field(metadata=...)``; the CLI builds its options and the dock
widget builds its controls and tooltips from these, so there is no second,
hand-maintained copy of the parameters anywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from napari_mpid.core.errors import ParameterError

__all__ = [
    "BUNDLED_MODELS",
    "CONTEXT_AXES",
    "DEFAULT_MODEL",
    "DEFAULT_PRESET",
    "NETWORK_USE",
    "NORMALIZATIONS",
    "PRESETS",
    "PRESET_FIELDS",
    "FillParams",
    "ParameterError",
    "field_kind",
    "preset",
    "preset_name",
]

#: Names of the models shipped inside the package (see ``napari_mpid/models``).
BUNDLED_MODELS = ("real-noise", "pixel-independent")
#: The default for fluorescence microscopy: shared (single-channel) mask, 85 %.
DEFAULT_MODEL = "real-noise"
#: Arithmetic of the network's forward/backward pass.
PRECISIONS = ("auto", "float32", "bfloat16")
#: Whether iterations are replayed as captured CUDA graphs on GPUs.
CUDA_GRAPHS = ("auto", "off")
#: Where the neighbour planes of context filling come from.
CONTEXT_AXES = ("auto", "Z", "T", "Q")
#: When the auto preset runs the network, see :func:`napari_mpid.core.auto.network_decision`.
NETWORK_USE = ("auto", "always", "never")
#: Intensity scaling policies, see :mod:`napari_mpid.core.run.normalization`.
NORMALIZATIONS = ("auto", "percentile", "minmax", "dtype", "none")


def _meta(help: str, **extra: Any) -> dict[str, Any]:
    return {"help": help, **extra}


def field_kind(f: dataclasses.Field) -> str:
    """The value type of a FillParams field: "int", "float", "bool" or "str" (``None`` aside)."""
    text = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    return text.replace("| None", "").replace("None |", "").strip()


@dataclass(frozen=True)
class FillParams:
    """Parameters of MPI iterative filling (validated on construction).

    Attributes
    ----------
    iterations : int
        Fine-tuning steps T per plane. More steps average more predictions but
        a network fine-tuned too long starts to reproduce the noise. 0 runs
        no network at all (auto preset only: the mix of blurs, neighbour
        planes and the noisy pixel alone; same as ``network="never"``).
    beta : float
        Weight of the exponential running average of the predictions for
        dropped pixels (0.90 for the fast preset, 0.99 for quality). Higher
        values average over more iterations.
    mask_ratio : float or None
        Fraction of pixels dropped (hidden from the network) at every
        iteration. None (the default) takes the ratio the model was
        pre-trained for: 0.85 for the real-noise model (real, spatially
        correlated noise), 0.30 for the pixel-independent model.
    learning_rate : float
        Adam step size of the per-plane fine-tuning.
    pd_factor : int
        Pixel-shuffle down-sampling factor ("+PD"): 1 disables it; 2 splits
        each plane into 4 phase-shifted sub-images, which breaks up spatially
        correlated noise.
    model : str
        A bundled model name ("real-noise", "pixel-independent") or the path
        of a checkpoint file (ours or the MPI authors' format).
    device : str
        "auto" (CUDA, then Apple MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps".
    seed : int
        Seed of the random masks; the same seed on the same device gives the
        same result.
    tile_size : int
        Planes larger than this (in either side) are filled in overlapping
        tiles of at most this size, blended seamlessly, to bound memory.
        0 (default): the largest tile that fits ``memory_limit``.
    tile_overlap : int
        Overlap between neighbouring tiles, in pixels.
    normalization : str
        How intensities are mapped to [0, 1] for the network: "auto"
        (default: 8-bit integers /255 as in the paper, floats in [0, 1] as
        they are, everything else by percentiles), "percentile" (0.1-99.9 % range with
        10 % headroom), "minmax" (exact data range), "dtype" (full range of
        an integer dtype) or "none" (data already in [0, 1]).
    stack_planes : int
        Planes of a stack filled at once, each with its own weights (stack
        mode, same results as one by one): 0 = automatic (from free GPU
        memory on CUDA, one by one elsewhere), 1 = one by one.
    precision : str
        "float32" (the reference arithmetic), "bfloat16" (convolutions in
        bf16 with float32 weights, Adam state and averages: several times
        faster on CPUs with native bf16, the same FMD PSNR in our benchmark,
        docs/benchmarks.md "Speed (CPU)") or "auto" (bfloat16 on such CPUs, float32 elsewhere).
    cuda_graphs : str
        "auto": on CUDA, capture one iteration as a CUDA graph after three
        eager ones and replay it (removes kernel-launch overhead; same
        arithmetic); "off": always eager. No effect on CPU or MPS.
    context : int or None
        Neighbouring planes on each side, along ``context_axis``, that the
        network sees besides the plane being denoised. 0 fills every plane
        on its own (the paper's method); None (default) decides from the
        data: on for stacks with a Z or T axis of enough planes, 0 otherwise.
    context_axis : str
        The stack axis the neighbours come from: "auto" (Z when the data has
        one, else T), or "Z", "T", "Q".
    memory_limit : float
        Memory (GiB) a run may use for the network's activations; 0 (default)
        takes half of the available RAM on CPU, 80 % of the free memory on a
        GPU. Sets the tile size when ``tile_size`` is 0.
    static_scene : bool
        The planes along ``context_axis`` are repeated exposures of one
        unchanging scene (frame averaging, done in software): each such
        series is averaged, the mean denoised as one plane, and the result
        written to every plane of the series (per-frame brightness flicker
        is averaged away with the noise). Exposures that drifted (by half a
        pixel or more) are registered to the first before averaging and the
        result is moved back onto each. Excludes ``context``. A result
        warns when a plane differs from the series more than noise would.
    adaptive : bool
        The auto preset: per plane, choose the mask ratio from the plane's
        measured noise, stop the filling when a held-out score stops
        improving (``iterations`` is then the most it runs), and blend the
        result with the Gaussian blur that a self-supervised score prefers.
        Choices and reasons are in the result's metadata.
    network : str
        When the auto preset runs the network: "auto" (default) only on
        planes whose noise says it will earn weight in the final mix (noise
        of one level everywhere; not on shot-noise-limited or spatially
        correlated noise, where the blur mix does the work in a fraction of
        the time), and there stopped halfway where its filling has earned no
        weight in the mix so far; "always" on every plane and to the end,
        "never" (the mix alone). The paper's presets (fast, quality, cpu)
        always run it.
    noise_profile : str or None
        Path of a noise profile written by ``napari-mpid noise-profile`` (or
        :meth:`napari_mpid.core.noise_profile.NoiseProfile.save`) from
        repeated exposures of one field with the settings of the data: its
        noise-level line (in the data's units) and autocorrelation replace
        the estimate from each plane in the auto preset's mix. Worth it
        where one plane cannot tell its noise from its signal: spatially
        correlated camera noise; on white shot noise the estimate does as
        well or better (docs/benchmarks.md, "Repeated exposures"). None
        (default): estimated per plane.
    """

    iterations: int = field(
        default=200,
        metadata=_meta(
            "Fine-tuning iterations T per plane (0 = no network: the auto preset's mix alone).", min=0, max=100_000
        ),
    )
    beta: float = field(
        default=0.90,
        metadata=_meta("EMA weight of the running average of predictions.", min=0.0, max=0.9999),
    )
    mask_ratio: float | None = field(
        default=None,
        metadata=_meta(
            "Fraction of pixels dropped per iteration, 0.01 to 0.99; default: the model's own "
            "(0.85 real-noise, 0.30 pixel-independent).",
            min=0.01,
            max=0.99,
        ),
    )
    learning_rate: float = field(
        default=2e-3,
        metadata=_meta("Adam learning rate of the per-plane fine-tuning.", min=1e-6, max=1.0),
    )
    pd_factor: int = field(
        default=1,
        metadata=_meta("Pixel-shuffle down-sampling factor (1 = off).", min=1, max=4),
    )
    model: str = field(
        default=DEFAULT_MODEL,
        metadata=_meta("Bundled model name or checkpoint path.", choices=BUNDLED_MODELS),
    )
    device: str = field(
        default="auto",
        metadata=_meta("Compute device: auto, cpu, cuda, cuda:N or mps."),
    )
    seed: int = field(default=0, metadata=_meta("Seed of the random masks.", min=0, max=2**31 - 1))
    tile_size: int = field(
        default=0,
        metadata=_meta("Planes larger than this are processed in tiles (0 = from memory_limit).", min=0, max=16384),
    )
    tile_overlap: int = field(
        default=64,
        metadata=_meta("Overlap between tiles in pixels.", min=0, max=1024),
    )
    normalization: str = field(
        default="auto",
        metadata=_meta("Intensity scaling to [0, 1].", choices=NORMALIZATIONS),
    )

    stack_planes: int = field(
        default=0,
        metadata=_meta("Planes filled at once on the GPU (0 = automatic, 1 = one by one).", min=0, max=256),
    )
    precision: str = field(
        default="auto",
        metadata=_meta(
            "Network arithmetic: auto (bf16 on CPUs with native bf16), float32, bfloat16.", choices=PRECISIONS
        ),
    )

    cuda_graphs: str = field(
        default="auto",
        metadata=_meta("Replay iterations as CUDA graphs on GPUs: auto or off.", choices=CUDA_GRAPHS),
    )
    context: int | None = field(
        default=None,
        metadata=_meta(
            "Neighbour planes on each side the network sees (0 = each plane alone; default: automatic).",
            min=0,
            max=8,
        ),
    )
    context_axis: str = field(
        default="auto",
        metadata=_meta("Axis the neighbour planes come from: auto (Z, else T), Z, T or Q.", choices=CONTEXT_AXES),
    )
    memory_limit: float = field(
        default=0.0,
        metadata=_meta("Memory for the network in GiB (0 = automatic); sets the tile size.", min=0.0, max=4096.0),
    )
    static_scene: bool = field(
        default=False,
        metadata=_meta(
            "The planes along the stack axis are repeated exposures of one unchanging scene: denoise their "
            "mean (drifted exposures registered first) and write it to every plane."
        ),
    )
    adaptive: bool = field(
        default=False,
        metadata=_meta("Choose mask ratio, stopping and a blur blend per plane from its noise (auto preset)."),
    )
    network: str = field(
        default="auto",
        metadata=_meta(
            "When the auto preset runs the network: auto (where the noise says it earns its time; stopped "
            "halfway if it has earned nothing), always, never.",
            choices=NETWORK_USE,
        ),
    )
    noise_profile: str | None = field(
        default=None,
        metadata=_meta(
            "Noise profile (JSON) measured from repeated exposures with the settings of the data "
            "(napari-mpid noise-profile): the auto preset takes every plane's noise from it instead of "
            "estimating it from the plane. Default: none (estimated per plane).",
            path=True,
            filter="Noise profiles (*.json);;All files (*)",
        ),
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            optional = "None" in str(f.type)
            if optional and value is None:
                continue
            kind = {"int": int, "float": float, "bool": bool}.get(field_kind(f), str)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
                value = float(value)
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
                raise ParameterError(f"{f.name} must be {kind.__name__}, got {value!r}")
            lo, hi = f.metadata.get("min"), f.metadata.get("max")
            if lo is not None and not (lo <= value <= hi):
                raise ParameterError(f"{f.name} must be in [{lo}, {hi}], got {value!r}")
        if self.mask_ratio is not None and not 0.0 < self.mask_ratio < 1.0:
            raise ParameterError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.normalization not in NORMALIZATIONS:
            raise ParameterError(
                f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {self.normalization!r}"
            )
        if self.cuda_graphs not in CUDA_GRAPHS:
            raise ParameterError(f"cuda_graphs must be one of {', '.join(CUDA_GRAPHS)}, got {self.cuda_graphs!r}")
        if self.precision not in PRECISIONS:
            raise ParameterError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.network not in NETWORK_USE:
            raise ParameterError(f"network must be one of {', '.join(NETWORK_USE)}, got {self.network!r}")
        if not self.adaptive and (self.iterations == 0 or self.network == "never"):
            raise ParameterError(
                "iterations 0 / network 'never' leave nothing to do with the paper's filling (fast, quality, cpu "
                "presets); use the auto preset, which then runs its mix of blurs and neighbour planes alone"
            )
        if self.context_axis not in CONTEXT_AXES:
            raise ParameterError(f"context_axis must be one of {', '.join(CONTEXT_AXES)}, got {self.context_axis!r}")
        if self.static_scene and self.context:
            raise ParameterError(
                f"static_scene averages the planes along the stack axis, so it takes no context (got context "
                f"{self.context}); use context 0 or leave it automatic"
            )
        if self.tile_size and self.tile_size < 64:
            raise ParameterError(f"tile_size must be 0 (automatic) or at least 64, got {self.tile_size}")
        if self.tile_size and self.tile_overlap * 2 >= self.tile_size:
            raise ParameterError(
                f"tile_overlap ({self.tile_overlap}) must be less than half of tile_size ({self.tile_size})"
            )
        if not self.model:
            raise ParameterError("model must name a bundled model or a checkpoint path")
        if self.noise_profile is not None and not self.noise_profile.strip():
            raise ParameterError("noise_profile must be the path of a profile file, or None")
        if self.noise_profile is not None and not self.adaptive:
            raise ParameterError(
                "a noise profile informs the auto preset's mix; the paper's presets (fast, quality, cpu) do not "
                "read the noise: use the auto preset with noise_profile"
            )

    @property
    def network_use(self) -> str:
        """How the run uses the network: "auto", "always" or "never" (``iterations`` 0 means never)."""
        if not self.adaptive:
            return "always"
        return "never" if self.iterations == 0 else self.network

    def replace(self, **changes: Any) -> FillParams:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of all fields (for metadata and JSON)."""
        return dataclasses.asdict(self)

    @classmethod
    def help(cls, name: str) -> str:
        """Help text of field ``name``."""
        return cls.__dataclass_fields__[name].metadata["help"]


#: Fields a preset sets; the others keep their defaults (mask ratio and model
#: those of the real-noise default) and can be changed with :meth:`FillParams.replace`.
PRESET_FIELDS = ("iterations", "beta", "learning_rate", "adaptive")

#: "fast" and "quality" are the paper's two settings (Sec. 4). "cpu" reaches
#: the fast preset's quality in 25 % fewer iterations with a larger Adam step
#: (docs/benchmarks.md, "The `cpu` preset"), for machines without a GPU.
PRESETS: dict[str, FillParams] = {
    "fast": FillParams(iterations=200, beta=0.90),
    "quality": FillParams(iterations=1000, beta=0.99),
    "cpu": FillParams(iterations=150, beta=0.90, learning_rate=3e-3),
    "auto": FillParams(iterations=200, beta=0.90, adaptive=True),
}
#: The preset of the API, the CLI and the widget when the user names none.
DEFAULT_PRESET = "auto"


def preset_descriptions() -> dict[str, str]:
    """One sentence per preset, its settings read from :data:`PRESETS`: the CLI's and the widget's help."""
    auto, fast, quality, cpu = (PRESETS[name] for name in ("auto", "fast", "quality", "cpu"))
    return {
        "auto": "decides for every plane, from its own noise, whether the network runs (how many pixels it "
        f"hides, when it stops: at most T={auto.iterations} iterations) and how to mix the image, its blurs, "
        "the network's result and, in stacks, the neighbour planes",
        "fast": f"T={fast.iterations}, beta {fast.beta:.2f}: the paper's iterative filling",
        "quality": f"T={quality.iterations}, beta {quality.beta:.2f}: the paper's iterative filling, slower",
        "cpu": f"T={cpu.iterations}, beta {cpu.beta:.2f}, learning rate {cpu.learning_rate:g}: the fast "
        "preset's quality in fewer iterations",
    }


def preset_name(params: FillParams | Mapping[str, Any]) -> str | None:
    """The preset whose :data:`PRESET_FIELDS` equal those of ``params`` (or of a field -> value mapping).

    Fields missing from a mapping count as their defaults.
    """
    if isinstance(params, Mapping):
        defaults = FillParams()
        values = tuple(params.get(f, getattr(defaults, f)) for f in PRESET_FIELDS)
    else:
        values = tuple(getattr(params, f) for f in PRESET_FIELDS)
    return next((k for k, p in PRESETS.items() if tuple(getattr(p, f) for f in PRESET_FIELDS) == values), None)


def preset(name: str, **changes: Any) -> FillParams:
    """The named preset ("fast", "quality" or "cpu") with optional changes.

    Raises
    ------
    ParameterError
        If the preset is unknown or a change is invalid.
    """
    try:
        base = PRESETS[name]
    except KeyError:
        raise ParameterError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
    return base.replace(**changes) if changes else base
