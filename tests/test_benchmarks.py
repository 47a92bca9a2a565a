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
    assert recipe.description
    if path.stem.startswith("dense"):  # a baseline with other training settings: nothing to compress
        assert callbacks == [] and recipe.training
        return
    # the level is a strength, the share of parameters a low-rank split removes (``${kept}`` = 1 - level),
    # or a size target
    assert any(
        getattr(cb, "strength", None) == 0.002
        or getattr(cb, "param_ratio", None) == pytest.approx(0.998)
        or getattr(getattr(cb, "target", None), "value", None) == 0.002
        for cb in callbacks
    )
    assert recipe.description


def test_the_plain_recipe_is_the_papers_lasso(peers: ModuleType) -> None:
    gs = peers.build_callbacks(peers.load_recipe(peers.recipe_path("group_lasso"), 1e-3, 30).compression)[0]
    r = gs.regularizer
    assert (r.cost.value, r.cost_exponent, r.groups.value, r.keep_ratio, r.l1_ratio) == (
        "params",
        1.0,
        "incoming",
        0.0,
        0.0,
    )
    assert (gs.warmup_epochs, gs.ramp_epochs, gs.stop_epoch, gs.every_n_steps) == (0, 0, None, 1)


def test_size_target_recipes_floor_and_optimizer(peers: ModuleType) -> None:
    """A target recipe's floor is 80% of the uniform width meeting it; ``training`` replaces SGD."""
    recipe = peers.load_recipe(peers.recipe_path("target_group_lasso_macs_adamw"), 0.25, 6)
    (gs,) = [cb for cb in peers.build_callbacks(recipe.compression) if hasattr(cb, "target")]
    assert (gs.target.measure, gs.target.value, gs.regularizer.keep_ratio) == ("macs", 0.25, 0.4)
    assert gs.regularizer.cost.value == "macs"
    module = peers._module(0, "lenet300_100", optimizer=recipe.training)
    assert (module.hparams["optimizer"], module.hparams["lr"], module.hparams["weight_decay"]) == (
        "adamw",
        1e-3,
        5e-4,
    )


def test_budget_shares_fill_in(peers: ModuleType) -> None:
    recipe = peers.load_recipe(peers.recipe_path("low_rank_group_lasso"), 0.9, 12)
    lr, gs = recipe.compression.low_rank, recipe.compression.group_sparsity
    assert (lr.stop_epoch, lr.split_epochs, lr.param_ratio) == (6, [5], pytest.approx(0.1))
    assert (gs.warmup_epochs, gs.stop_epoch) == (6, 8)
    assert recipe.refit is False


def test_a_refit_recipe_says_so(peers: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "refit.yaml"
    path.write_text("description: d\nrefit: true\ncompression:\n  group_sparsity:\n    strength: ${level}\n")
    recipe = peers.load_recipe(path, 1e-3, 12)
    assert recipe.refit is True and recipe.compression.group_sparsity.strength == 1e-3


def test_a_grid_recipe_runs_each_point(peers: ModuleType) -> None:
    tables = _load("tables")
    path = peers.recipe_path("trimmed_group_lasso")
    keeps = [p["keep"] for p in tables.grid("trimmed_group_lasso")]
    assert len(keeps) > 1
    for keep in keeps:
        gs = peers.load_recipe(path, 1.0, 6, {"keep": keep}).compression.group_sparsity
        assert (gs.keep_ratio, gs.strength, gs.stop_epoch) == (keep, 1.0, 4)
    assert peers.parse_job(tables.job_name("trimmed_group_lasso", 1.0, {"keep": 0.3})) == (
        "trimmed_group_lasso",
        1.0,
        {"keep": 0.3},
    )


def test_every_table_row_names_a_recipe_or_a_peer(peers: ModuleType) -> None:
    tables = _load("tables")
    known_peers = {"svd", "tp_magnitude", "tp_groupnorm", "lt_pruning", "scratch", "dense"}
    for table in tables.TABLES:
        for row in table.rows:
            assert row.method in known_peers or peers.recipe_path(row.method) is not None, row.method


def test_reproduce_picks_the_run_of_the_first_filled_cell() -> None:
    reproduce = _load("reproduce")
    table = _load("tables").TABLES[0]
    runs = [
        {"method": "m", "seed": 0, "level": 1, "test_acc": 0.80, "removed_params": 0.85},
        {"method": "m", "seed": 0, "level": 2, "test_acc": 0.90, "removed_params": 0.45},
        {"method": "m", "seed": 1, "level": 1, "test_acc": 0.95, "removed_params": 0.99},
    ]
    assert reproduce.cell_run(table, runs, "m", (1, 2))["level"] == 1  # 0.45 fills no column
    assert reproduce.cell_run(table, runs, "other", (1,)) is None


def test_peers_are_not_recipes(peers: ModuleType) -> None:
    assert peers.recipe_path("tp_magnitude") is None and peers.recipe_path("ours_mac") is None


def test_a_bad_recipe_key_is_named(peers: ModuleType, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("compression:\n  group_sparsity:\n    strenght: 0.1\n")
    with pytest.raises(ValueError, match="compression.group_sparsity.strenght"):
        peers.load_recipe(bad, 1e-3, 12)


def test_the_flexible_rank_section_averages_seeds_per_size(monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import flexible_rank

    rows = [
        {"kind": "fit", "method": m, "seed": s, "test_acc": 0.9}
        for m in ("flexible", "plain")
        for s in (0, 1)
    ]
    rows += [
        {"kind": "size", "method": "flexible", "seed": s, "share": 0.1, "params": 100, "macs": 100,
         "test_acc": acc, "set_size_seconds": 0.5}
        for s, acc in ((0, 0.80), (1, 0.90))
    ]  # fmt: skip
    rows.append({"kind": "size", "method": "plain", "seed": 0, "share": 0.05, "unreachable": "below rank 1"})
    monkeypatch.setattr(
        flexible_rank, "_best_separate", lambda model, share: (0.95, "best") if share == 0.1 else None
    )
    text = "\n".join(flexible_rank._model_section("lenet300_100", rows))
    assert "| flexible rank (one model) | 90.00% ± 0.00% (2) | - | - | 85.00% ± 7.07% (2) | - |" in text
    assert "95.00% (`best`)" in text and "plain cannot be taken at 5% of the params: below rank 1" in text
    assert "median 0.500 s" in text


def test_one_front_cells_pick_by_validation_and_hypervolume_counts_the_front() -> None:
    front = _load("methods_front")
    rows = [
        {"seed": 0, "params": p, "dense_params": 100, "val_acc": v, "test_acc": t}
        for p, v, t in ((10, 0.80, 0.79), (12, 0.85, 0.83), (40, 0.90, 0.91))
    ]
    # >= 80% fewer: trials 10 and 12; the validation pick (12) reports its test accuracy, not the best test
    assert front.cell(rows, 0.8, "params", "val") == 0.83 and front.cell(rows, 0.8, "params", "test") == 0.83
    assert front.cell(rows, 0.95, "params", "val") is None
    assert front.hypervolume(rows, "params") == pytest.approx(0.9 * 0.8 + 0.88 * 0.05 + 0.6 * 0.05, abs=1e-4)
