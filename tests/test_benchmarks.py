"""The benchmark scripts' own logic: a wrong parse would put a mislabeled row in RESULTS.md."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def peers() -> ModuleType:
    return _load("group_sparsity_vs_peers")


RECIPES = sorted((ROOT / "benchmarks" / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_builds_its_callbacks(peers: ModuleType, path: Path) -> None:
    recipe = peers.load_recipe(path, 0.002, 12)
    callbacks = peers.build_callbacks(recipe.compression)
    # the level is a strength, or the share of parameters a low-rank split removes (``${kept}`` = 1 - level)
    assert any(
        getattr(cb, "strength", None) == 0.002 or getattr(cb, "param_ratio", None) == pytest.approx(0.998)
        for cb in callbacks
    )
    assert recipe.description


def test_the_plain_recipe_is_the_papers_lasso(peers: ModuleType) -> None:
    gs = peers.build_callbacks(peers.load_recipe(peers.recipe_path("ours"), 1e-3, 30).compression)[0]
    r = gs.regularizer
    assert (r.cost.value, r.cost_exponent, r.groups.value, r.keep_ratio, r.l1_ratio) == (
        "params",
        1.0,
        "incoming",
        0.0,
        0.0,
    )
    assert (gs.warmup_epochs, gs.ramp_epochs, gs.stop_epoch, gs.every_n_steps) == (0, 0, None, 1)


@pytest.mark.parametrize(
    ("name", "expected", "refit"),
    [
        ("ours_macs_ramp_half_keep40", {"ramp_epochs": 4, "stop_epoch": 6, "keep_ratio": 0.4}, False),
        ("ours_macs_ft_keep25", {"ramp_epochs": 0, "stop_epoch": 8, "keep_ratio": 0.25}, False),
        ("ours_ramp", {"ramp_epochs": 4, "stop_epoch": None, "keep_ratio": 0.0}, False),
        ("ours_macs_refit_keep40", {"stop_epoch": None, "keep_ratio": 0.4}, True),
    ],
)
def test_budget_shares_fill_in(peers: ModuleType, name: str, expected: dict, refit: bool) -> None:
    recipe = peers.load_recipe(peers.recipe_path(name), 1e-3, 12)
    gs = recipe.compression.group_sparsity
    assert {k: getattr(gs, k) for k in expected} == expected
    assert recipe.refit is refit


def test_peers_are_not_recipes(peers: ModuleType) -> None:
    assert peers.recipe_path("tp_magnitude") is None and peers.recipe_path("ours_mac") is None


def test_a_bad_recipe_key_is_named(peers: ModuleType, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("compression:\n  group_sparsity:\n    strenght: 0.1\n")
    with pytest.raises(ValueError, match="compression.group_sparsity.strenght"):
        peers.load_recipe(bad, 1e-3, 12)
