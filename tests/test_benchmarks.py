"""The benchmark scripts' own logic: a wrong parse would put a mislabeled row in RESULTS.md."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from lightning_compress.callbacks import GroupSparsity

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


def test_plain_ours_is_the_papers_lasso(peers: ModuleType) -> None:
    options, refit = peers.ours_options("ours", 30)
    assert options == {
        "cost": "params",
        "cost_exponent": 1.0,
        "groups": "incoming",
        "warmup_epochs": 0,
        "ramp_epochs": 0,
        "stop_epoch": None,
        "keep_ratio": 0.0,
    }
    assert not refit


@pytest.mark.parametrize(
    ("method", "expected", "refit"),
    [
        (
            "ours_macs_ramp_half_keep40",
            {"cost": "macs", "ramp_epochs": 4, "stop_epoch": 6, "keep_ratio": 0.4},
            False,
        ),
        ("ours_macs_ramp6_half_keep25", {"ramp_epochs": 6, "stop_epoch": 6, "keep_ratio": 0.25}, False),
        ("ours_macs_sqrt_ft", {"cost_exponent": 0.5, "stop_epoch": 8, "ramp_epochs": 0}, False),
        ("ours_macs_warm_ft", {"warmup_epochs": 4, "stop_epoch": 8}, False),
        ("ours_coupled", {"groups": "coupled"}, False),
        ("ours_macs_bn", {"groups": "bn", "cost": "macs"}, False),
        ("ours_macs_refit_keep40", {"stop_epoch": None, "keep_ratio": 0.4}, True),
    ],
)
def test_flags(peers: ModuleType, method: str, expected: dict, refit: bool) -> None:
    options, got_refit = peers.ours_options(method, 12)
    assert {k: options[k] for k in expected} == expected
    assert got_refit is refit
    GroupSparsity(1e-3, **options)  # every parse is a valid configuration


@pytest.mark.parametrize(
    "method",
    [
        "ours_mac",  # typo
        "ours_ft_half",  # two splits
        "ours_half_refit",
        "ours_coupled_bn",
        "ours_keep10_keep20",
        "ours_keep",  # no floor given
        "ours_keep100",  # would keep every group: no lasso at all
        "ours_rampx",
        "ours_macs_macs",
        "tp_magnitude",
    ],
)
def test_bad_flags_are_refused(peers: ModuleType, method: str) -> None:
    with pytest.raises(ValueError, match="unknown method"):
        peers.ours_options(method, 12)
