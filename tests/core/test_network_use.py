"""The auto preset runs the network only where it earns its time, and says what produced each result."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import napari_mpid.core.engine.modes as modes
from napari_mpid.core.auto import FAMILIES, Combination, combine, family_of, network_decision
from napari_mpid.core.engine import denoise_planes
from napari_mpid.core.engine.parts import ABANDON_AT, PlaneFiller, record_choice
from napari_mpid.core.model.checkpoints import load_model
from napari_mpid.core.noise import correlated_noise, estimate_noise_channels
from napari_mpid.core.params import ParameterError, preset
from napari_mpid.core.run.plan import make_plan

from .helpers import filaments, run

MODEL = "random-init:1:single"


@pytest.fixture
def tiny_filler():
    """A plane filler for a 64x64 gray plane (random network), a noisy plane and its clean image."""
    params = preset("auto", model=MODEL, device="cpu")
    model = load_model(MODEL, torch.device("cpu"))
    plan = make_plan((1, 64, 64), np.float32, params, model, torch.device("cpu"), axes="ZYX")
    clean = filaments(64, 5)[None].astype(np.float32)
    noisy = clean + np.random.default_rng(5).normal(0, 0.08, clean.shape).astype(np.float32)
    return PlaneFiller(model, plan, torch.device("cpu")), noisy, clean


def _shot_noise_plane(size: int = 96, seed: int = 0) -> np.ndarray:
    """Bright blobs over a dark background with Poisson-Gaussian noise, in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    clean = np.full((size, size), 0.05)
    for cy, cx in rng.uniform(10, size - 10, (12, 2)):
        clean += 0.6 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 20.0)
    return np.clip(rng.poisson(clean * 60) / 60 + rng.normal(0, 0.01, clean.shape), 0, None)


def _gaussian_texture_plane(size: int = 96, seed: int = 0) -> np.ndarray:
    """Dense filaments with Gaussian noise of one level everywhere, in [0, 1]."""
    rng = np.random.default_rng(seed)
    return filaments(size, seed) + rng.normal(0, 0.08, (size, size))


def test_shot_noise_and_correlated_noise_skip_the_network_constant_noise_runs_it():
    shot = _shot_noise_plane()[None]
    rng = np.random.default_rng(1)
    correlated = (filaments(96) + 0.05 * correlated_noise((96, 96), 0.6, rng))[None]
    constant = _gaussian_texture_plane()[None]

    assert network_decision(shot) == (False, "noise that grows with the signal (shot noise): mix without the network")
    run_it, why = network_decision(correlated)
    assert not run_it and "correlated" in why
    run_it, why = network_decision(constant, estimate_noise_channels(constant))
    assert run_it and "one level" in why


def test_shares_credit_every_candidate_to_its_family_and_sum_to_one():
    how = Combination(
        {
            "filling": 0.2,
            "noisy": 0.1,
            "blur 1": 0.2,
            "nlm h 0.7": 0.05,
            "band 0-0.75 shrunk": 0.05,
            "all others, blur 0.5": 0.4,
            "noisy x intensity": 5.0,
        },
        offset=0.01,
        held_out_error=1e-4,
    )

    shares = how.shares()

    assert list(shares) == list(FAMILIES)
    assert shares == pytest.approx(
        {
            "network": 0.2,
            "neighbour planes": 0.4,
            "non-local means": 0.05,
            "shrunk bands": 0.05,
            "blurs": 0.2,
            "noisy pixel": 0.1,
        }
    )
    assert family_of("context prediction") == "network"
    assert family_of("neighbours 1, registered") == "neighbour planes"


def test_combine_without_a_network_candidate_is_the_plane_mix_with_no_network_share():
    plane = _shot_noise_plane()[None]
    held = np.random.default_rng(0).random(plane.shape[1:]) < 0.04

    _, how = combine(plane, {}, held, estimate_noise_channels(plane))

    assert not how.held_out_used
    assert how.shares()["network"] == 0.0
    assert sum(how.shares().values()) == pytest.approx(1.0)


@pytest.mark.parametrize("changes", [{"iterations": 0}, {"network": "never"}, {"network": "auto"}])
def test_auto_without_the_network_runs_no_iteration_and_says_so(changes):
    plane = (_shot_noise_plane() * 1000).astype(np.uint16)
    params = preset("auto", model=MODEL, device="cpu", **changes)

    steps, result = run(denoise_planes(plane, params))

    assert [s.event for s in steps] == ["plane"]
    assert steps[-1].fraction == 1.0
    (choice,) = result.choices
    assert choice["network"] is False and choice["stopped_at"] == []
    assert result.produced_by()["network"] == 0.0
    assert sum(result.produced_by().values()) == pytest.approx(100.0, abs=0.2)
    assert "without the network: " in result.summary().split(".")[0]
    assert result.metadata()["summary"] == result.summary()
    assert not result.warnings  # values beyond the network's range do not matter to the mix
    assert np.isfinite(result.denoised).all() and result.denoised.std() < plane.std()


def test_a_plane_whose_noise_wants_the_network_is_filled_and_credited(monkeypatch):
    # A random network's filling earns nothing and would be abandoned (next test): here it
    # is taken to earn its place, to check what a run that keeps it records.
    monkeypatch.setattr(PlaneFiller, "filling_earns", lambda self, *args: True)
    plane = _gaussian_texture_plane(64).astype(np.float32)
    params = preset("auto", iterations=4, model=MODEL, device="cpu")

    steps, result = run(denoise_planes(plane, params))

    assert any(s.event == "iteration" for s in steps)
    (choice,) = result.choices
    assert choice["network"] is True and choice["stopped_at"] == [4]
    assert set(choice["shares"]) == set(FAMILIES)
    assert "with the network on every plane: network" in result.summary()


def test_a_filling_that_earns_nothing_is_abandoned_and_the_plane_gets_the_mix_alone():
    plane = _gaussian_texture_plane(64).astype(np.float32)
    params = preset("auto", iterations=8, model=MODEL, device="cpu")
    check = round(ABANDON_AT * params.iterations)

    steps, result = run(denoise_planes(plane, params))
    _, alone = run(denoise_planes(plane, preset("auto", model=MODEL, device="cpu", network="never")))

    (choice,) = result.choices
    assert choice["network"] is True and choice["abandoned_at"] == check
    assert max(s.iteration for s in steps if s.event == "iteration") == check
    assert choice["blend_weight"] == 0.0 and result.produced_by()["network"] == 0.0
    # The same held-out pixels, noise estimate and mix as a run without the network.
    np.testing.assert_array_equal(result.denoised, alone.denoised)
    assert "without the network (tried on 1 plane, abandoned: it earned nothing)" in result.summary()
    assert (
        f"network on 0 of 1, tried and abandoned on 1 plane at iteration {check} (it earned nothing)"
        in result.metadata()["notes"][-1]
    )


def test_filling_earns_tells_a_good_filling_from_a_useless_one(tiny_filler):
    filler, noisy, clean = tiny_filler
    held = np.random.default_rng(4).random(noisy.shape[1:]) < 0.04
    noise = estimate_noise_channels(noisy)
    useless = np.full_like(noisy, float(noisy.mean()))

    assert filler.filling_earns(noisy, filler.to_batch(clean), held, noise, 0, 0)
    assert not filler.filling_earns(noisy, filler.to_batch(useless), held, noise, 0, 0)


def test_network_always_fills_planes_the_decision_would_skip():
    plane = (_shot_noise_plane(64) * 1000).astype(np.uint16)
    params = preset("auto", iterations=3, network="always", model=MODEL, device="cpu")

    _, result = run(denoise_planes(plane, params))

    assert result.choices[0]["network"] is True
    assert result.choices[0]["network_reason"] == "network on (network 'always')"
    # What the user asked for runs to the end, earning or not.
    assert "abandoned_at" not in result.choices[0] and result.choices[0]["stopped_at"] == [3]


def test_the_papers_presets_refuse_to_run_without_the_network():
    with pytest.raises(ParameterError, match="iterations 0"):
        preset("fast", iterations=0)
    with pytest.raises(ParameterError, match="auto preset"):
        preset("quality", network="never")


def test_stacks_without_the_network_use_their_neighbour_planes():
    rng = np.random.default_rng(3)
    clean = np.stack([filaments(64, 9)] * 4) + 0.1
    stack = rng.poisson(clean * 80) / 80.0
    params = preset("auto", model=MODEL, device="cpu", context=1, network="never")

    steps, result = run(denoise_planes(stack.astype(np.float32), params, axes="ZYX"))

    assert {s.stage for s in steps} == {"predict"}
    assert len(result.choices) == 4
    assert all(c["network"] is False for c in result.choices)
    assert result.produced_by()["neighbour planes"] > 0
    assert ((result.denoised - clean) ** 2).mean() < ((stack - clean) ** 2).mean() / 4


def test_the_auto_preset_keeps_its_per_plane_choices_when_stack_planes_is_set():
    # Stack mode fills with the paper's loop only; it used to take over auto runs too.
    stack = np.stack([_gaussian_texture_plane(48, s) for s in range(3)]).astype(np.float32)
    params = preset("auto", iterations=2, model=MODEL, device="cpu", context=0, stack_planes=2)

    _, result = run(denoise_planes(stack, params, axes="ZYX"))

    assert sorted(c["plane"] for c in result.choices) == [0, 1, 2]


def test_a_filling_rejected_as_a_copy_of_the_plane_is_recorded_with_no_weight():
    # A network that reproduces the plane (its noise included) is left out of the mix;
    # recording that plane's choices used to fail with KeyError: 'filling'.
    plane = _shot_noise_plane()[None]
    held = np.random.default_rng(0).random(plane.shape[1:]) < 0.04
    _, how = combine(plane, {"filling": plane.copy()}, held, estimate_noise_channels(plane))

    choice = record_choice({}, how, "filling")

    assert how.rejected == ("filling",)
    assert choice["blend_weight"] == 0.0 and choice["shares"]["network"] == 0.0


def test_context_filling_abandons_a_stack_network_that_earns_nothing():
    # Gaussian noise of one level: the stack's network is fitted, checked part of the way
    # on the middle plane (a random network earns nothing), and every plane gets the mix alone.
    stack = np.stack([_gaussian_texture_plane(48, s) for s in range(4)]).astype(np.float32)
    params = preset("auto", iterations=8, model=MODEL, device="cpu", context=1)
    check = round(ABANDON_AT * params.iterations)

    steps, result = run(denoise_planes(stack, params, axes="ZYX"))
    _, alone = run(
        denoise_planes(stack, preset("auto", model=MODEL, device="cpu", context=1, network="never"), axes="ZYX")
    )

    assert max(s.iteration for s in steps if s.stage == "fit") == check
    assert [c["abandoned_at"] for c in result.choices] == [check] * 4
    assert "without the network (tried on 1 stack, abandoned: it earned nothing)" in result.summary()
    assert result.fitted == {}  # nothing to hand back to a later run
    assert any(f"network abandoned at iteration {check}" in note for note in result.notes)
    np.testing.assert_array_equal(result.denoised, alone.denoised)
    assert steps[-1].fraction == 1.0


def test_a_tiled_part_stops_only_the_tiles_whose_filling_earns_nothing(monkeypatch):
    # Tile by tile: the first tile's filling is taken to earn nothing, the others to earn.
    asked = []

    def earns(self, piece, interim, held, noise, number, part_no, tile=0):
        asked.append(tile)
        return tile != 0

    monkeypatch.setattr(PlaneFiller, "filling_earns", earns)
    plane = _gaussian_texture_plane(128).astype(np.float32)
    params = preset("auto", iterations=8, model=MODEL, device="cpu", tile_size=64, tile_overlap=8)
    check = round(ABANDON_AT * params.iterations)

    steps, result = run(denoise_planes(plane, params))

    (choice,) = result.choices
    tiles = max(s.tile for s in steps)
    assert tiles > 1 and asked == list(range(tiles))
    assert "abandoned_at" not in choice and choice["tiles_abandoned"] == 1
    assert choice["stopped_at"] == [check] + [params.iterations] * (tiles - 1)
    last = {}
    for s in steps:
        if s.event == "iteration":
            last[s.tile] = s.iteration
    assert last[1] == check and all(last[k] == params.iterations for k in range(2, tiles + 1))


def test_a_tiled_part_where_no_tile_earns_gets_the_mix_alone(monkeypatch):
    # On 64x64 tiles (~160 held-out pixels each) a random filling may show a positive gain
    # by chance: here no tile earns.
    monkeypatch.setattr(PlaneFiller, "filling_earns", lambda self, *args: False)
    plane = _gaussian_texture_plane(128).astype(np.float32)
    tiling = {"tile_size": 64, "tile_overlap": 8}
    params = preset("auto", iterations=8, model=MODEL, device="cpu", **tiling)

    steps, result = run(denoise_planes(plane, params))
    _, alone = run(denoise_planes(plane, preset("auto", model=MODEL, device="cpu", network="never", **tiling)))

    (choice,) = result.choices
    assert max(s.tile for s in steps) > 1
    assert choice["abandoned_at"] == round(ABANDON_AT * params.iterations) and choice["stopped_at"] == []
    np.testing.assert_array_equal(result.denoised, alone.denoised)


def test_context_filling_checks_a_tiled_stack_tile_by_tile(monkeypatch):
    # Planes predicted in tiles: the check crops the middle plane and its neighbours' means
    # to each tile and keeps the network if any tile earns; a random network earns on none.
    real, regions = modes._context_earns, []

    def spy(*args):
        regions.append(args[-1])
        return real(*args)

    monkeypatch.setattr(modes, "_context_earns", spy)
    stack = np.stack([_gaussian_texture_plane(96, s) for s in range(4)]).astype(np.float32)
    tiling = {"tile_size": 64, "tile_overlap": 8, "context": 1}
    params = preset("auto", iterations=8, model=MODEL, device="cpu", **tiling)

    _, result = run(denoise_planes(stack, params, axes="ZYX"))
    never = preset("auto", model=MODEL, device="cpu", network="never", **tiling)
    _, alone = run(denoise_planes(stack, never, axes="ZYX"))

    assert len(regions) == 1 and len(regions[0]) > 1  # one check, over every tile
    assert [c["abandoned_at"] for c in result.choices] == [round(ABANDON_AT * params.iterations)] * 4
    np.testing.assert_array_equal(result.denoised, alone.denoised)
