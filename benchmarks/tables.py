"""The results tables: which runs each table holds, one row per method (its recipe or peer and levels).

``summarize.py`` writes the tables from the recorded runs, ``reproduce.py`` re-runs one seed-0 cell of every
row and compares, and ``jobs`` lists the runs ``group_sparsity_vs_peers.py`` makes for a table. A recipe
with a ``grid`` contributes one run per grid point at each level, all in its row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = ["LEVELS", "TABLES", "Row", "Table", "jobs"]

LEVELS = (0.5, 0.8, 0.9, 0.95)
"""The table's columns: at least this share of the dense model's parameters (or MACs) removed."""


@dataclass(frozen=True)
class Row:
    """One method of a table: its label, the job name (a recipe file's stem or a peer) and its levels."""

    label: str
    method: str
    levels: tuple[float, ...]


@dataclass(frozen=True)
class Table:
    """One front: a model and data setting, a size measure, a budget, the seeds and the rows."""

    name: str
    model: str
    normalize: str
    key: str  # "removed_params" or "removed_macs"
    epochs: int
    seeds: tuple[int, ...]
    rows: tuple[Row, ...]
    in_readme: bool = False
    plot: bool = True  # front_<model>_<normalize>_<measure>.png: one table per such name draws it

    def runs(self, rows: list[dict]) -> list[dict]:
        """The recorded runs that belong to this table (any method, dense included)."""
        return [
            r
            for r in rows
            if r.get("model", "lenet300_100") == self.model
            and r.get("normalize", "global") == self.normalize
            and r["epochs"] == self.epochs
        ]


PEER_LEVELS = (0.5, 0.8, 0.9, 0.95)

TABLES = (
    Table(
        name="lenet300_100_params",
        model="lenet300_100",
        normalize="global",
        key="removed_params",
        epochs=30,
        seeds=(0, 1, 2),
        in_readme=True,
        rows=(
            Row(
                "ours: `LowRank` split, then `GroupSparsity`, in one fit",
                "low_rank_group_lasso",
                (0.5, 0.8, 0.91, 0.96),
            ),
            Row(
                "ours: `GroupSparsity` + `StructuredPruning` during fit",
                "group_lasso",
                (0.0002, 0.0005, 0.001, 0.002, 0.004),
            ),
            Row(
                "ours: `GroupSparsity(target_params=...)`, the size asked for",
                "target_group_lasso",
                (0.5, 0.2, 0.1, 0.05),
            ),
            Row("post-hoc truncated SVD (train half, split, fine-tune)", "svd", (0.5, 0.8, 0.91, 0.96)),
            Row(
                "Torch-Pruning GroupNormPruner (sparse training, prune, fine-tune)",
                "tp_groupnorm",
                PEER_LEVELS,
            ),
            Row("Torch-Pruning MagnitudePruner (train, prune, fine-tune)", "tp_magnitude", PEER_LEVELS),
            Row("Lightning ModelPruning (ln_structured) + physical removal", "lt_pruning", PEER_LEVELS),
        ),
    ),
    Table(
        name="lenet300_100_adamw",
        model="lenet300_100",
        normalize="global",
        key="removed_params",
        epochs=30,
        seeds=(0, 1, 2),
        plot=False,
        rows=(
            Row(
                "ours: `GroupSparsity(target_params=...)` with AdamW",
                "target_group_lasso_adamw",
                (0.5, 0.2, 0.1),
            ),
            Row(
                "ours: `GroupSparsity(strength)` with AdamW, strengths swept",
                "group_lasso_adamw",
                (0.015, 0.03, 0.045, 0.065, 0.1),
            ),
        ),
    ),
    Table(
        name="transformer_small_params",
        model="transformer_small",
        normalize="global",
        key="removed_params",
        epochs=6,
        seeds=(0, 1, 2),
        rows=(
            Row(
                "ours: trimmed `GroupSparsity` (heads, MLP units, residual width), fine-tuned",
                "trimmed_group_lasso",
                (1.0,),
            ),
            Row(
                "Torch-Pruning GroupNormPruner (sparse training, prune, fine-tune)",
                "tp_groupnorm",
                (0.3, 0.45, 0.55, 0.65),
            ),
            Row(
                "Torch-Pruning MagnitudePruner (train, prune, fine-tune)",
                "tp_magnitude",
                (0.3, 0.45, 0.55, 0.65),
            ),
        ),
    ),
)
"""Every accuracy table of the README and ``RESULTS.md`` (the DALR transfer table aside)."""


RECIPES = Path(__file__).resolve().parent / "recipes"


def grid(method: str) -> list[dict[str, float]]:
    """The points of a recipe's ``grid`` (``[{}]`` for a recipe without one, or a peer).

    Example:
        >>> grid("trimmed_group_lasso")[:2], grid("svd")
        ([{'keep': 0.25}, {'keep': 0.3}], [{}])
    """
    path = RECIPES / f"{method}.yaml"
    axes = (yaml.safe_load(path.read_text()) or {}).get("grid", {}) if path.is_file() else {}
    points: list[dict[str, float]] = [{}]
    for name, values in axes.items():
        points = [{**p, name: float(v)} for p in points for v in values]
    return points


def job_name(method: str, level: float, variant: dict[str, float]) -> str:
    """The job string of one run: ``method:level`` and, for a grid point, ``:name=value,...``."""
    suffix = ",".join(f"{k}={v:g}" for k, v in variant.items())
    return f"{method}:{level:g}" + (f":{suffix}" if suffix else "")


def jobs(table: Table) -> list[tuple[str, int]]:
    """``(job, seed)`` for every run of ``table``: dense first, seed 0 first, each grid point of a recipe.

    Example:
        >>> jobs(TABLES[0])[:2]
        [('dense:0', 0), ('low_rank_group_lasso:0.5', 0)]
    """
    names = [
        job_name(row.method, level, variant)
        for row in table.rows
        for level in row.levels
        for variant in grid(row.method)
    ]
    return [(job, seed) for seed in table.seeds for job in ["dense:0", *names]]
