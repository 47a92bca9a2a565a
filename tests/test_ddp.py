from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("ddp_script.py")


def _run_ranks(tmp_path: Path, *args: str) -> tuple[dict, dict]:
    """Run the two-rank script with ``args``; what rank 0 and rank 1 saved."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SCRIPT.parents[1])}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    start = max(proc.stderr.find("Traceback"), proc.stderr.find("Fatal Python error"))
    assert proc.returncode == 0, proc.stderr[start : start + 4000] if start >= 0 else proc.stderr[-4000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    return rank0, rank1


def test_two_process_ddp_prox_and_prune_agree(tmp_path: Path) -> None:
    rank0, rank1 = _run_ranks(tmp_path)
    assert rank0["history"] == rank1["history"] and rank0["history"], "both ranks pruned the same groups"
    assert rank0["state"]["model.1.weight"].shape[0] < 32
    assert rank0["state"].keys() == rank1["state"].keys()
    for key, value in rank0["state"].items():
        assert torch.equal(value, rank1["state"][key]), key
    # input statistics are all-reduced: both ranks hold the sum over both shards (64 samples each)
    assert rank0["count"] == rank1["count"] == 128
    for name in ("1", "3"):
        assert torch.equal(rank0["xxt"][name], rank1["xxt"][name]), name
    total = rank0["local_xxt"] + rank1["local_xxt"]
    assert torch.allclose(rank0["xxt"]["1"], total, rtol=1e-9, atol=1e-6)
    assert not torch.allclose(rank0["local_xxt"], total)


@pytest.mark.parametrize("method", ["low_rank", "dalr"])
def test_two_process_ddp_low_rank_split_agrees(tmp_path: Path, method: str) -> None:
    rank0, rank1 = _run_ranks(tmp_path, method)
    factorized = [r for r in rank0["history"] if r["kind"] == "factorize"]
    assert factorized and rank0["history"] == rank1["history"], (
        "both ranks split the same layers at the same ranks"
    )
    assert rank0["state"].keys() == rank1["state"].keys() and "model.1.0.weight" in rank0["state"]
    for key, value in rank0["state"].items():
        assert torch.equal(value, rank1["state"][key]), key


def test_two_process_ddp_removes_heads_units_and_residual_width_alike(tmp_path: Path) -> None:
    rank0, rank1 = _run_ranks(tmp_path, "transformer")
    assert rank0["history"] == rank1["history"]
    assert {"prune", "prune_heads", "prune_width"} <= {r["kind"] for r in rank0["history"]}
    assert rank0["state"]["model.pos"].shape[-1] == 8  # half of the width of 16
    assert rank0["state"].keys() == rank1["state"].keys()
    for key, value in rank0["state"].items():
        assert torch.equal(value, rank1["state"][key]), key


def test_two_process_ddp_reaches_a_size_target_alike(tmp_path: Path) -> None:
    rank0, rank1 = _run_ranks(tmp_path, "target")
    assert rank0["history"] == rank1["history"] and rank0["history"], "both ranks removed the same groups"
    for key, value in rank0["state"].items():
        assert torch.equal(value, rank1["state"][key]), key
    params = sum(
        v.numel() for k, v in rank0["state"].items() if k.startswith("model.") and "history" not in k
    )
    dense, neuron = 784 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10, 784 + 1 + 16
    assert 0.4 * dense - neuron <= params <= 0.4 * dense


@pytest.mark.parametrize("method", ["flexible", "flexible_alternate"])
def test_two_process_ddp_flexible_rank_chooses_the_same_ranks(tmp_path: Path, method: str) -> None:
    rank0, rank1 = _run_ranks(tmp_path, method)
    assert rank0["ranks"] and rank0["ranks"] == rank1["ranks"], "both processes trained the same ranks"
    assert len({tuple(r.values()) for r in rank0["ranks"] if r}) > 1, "the drawn ranks vary from step to step"
    for key, value in rank0["state"].items():
        assert torch.equal(value, rank1["state"][key]), key
