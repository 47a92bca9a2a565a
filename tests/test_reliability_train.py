"""Training runs under faults, with real processes and real files: kill, full disk, read-only folder,
truncated checkpoints, racing starts, bad input. Each ends in one line and exit status 2, or resumes."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lightning_compress.config import RunConfig
from lightning_compress.run import make_run_dir
from lightning_compress.surgery.base import decode_history

from .sweep_helpers import mounted_tmpfs

ROOT = Path(__file__).resolve().parents[1]
GS = ROOT / "configs" / "gs_lenet300_fmnist.yaml"
FAST = [
    "trainer.limit_train_batches=100",
    "trainer.limit_val_batches=5",
    "trainer.limit_test_batches=5",
    "trainer.enable_progress_bar=false",
    "compression.group_sparsity.strength=0.01",
    "compression.group_sparsity.log_effective_size=false",
]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}


def _cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "lightning_compress.cli.main", *args]
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _one_error_line(proc: subprocess.CompletedProcess[str], *needles: str, upfront: bool = True) -> str:
    """The error line; ``upfront``: the only line (nothing ran before the check)."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 or not upfront, proc.stderr[-3000:]
    lines = lines[-1:]
    assert lines[0].startswith("lightning-compress: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _runs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*/*") if p.is_dir())


def test_a_run_killed_mid_fit_after_a_prune_resumes_to_the_same_weights(
    real_fmnist: Path, tmp_path: Path
) -> None:
    args = ["train", str(GS), *FAST, "trainer.max_epochs=4"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "lightning_compress.cli.main", *args, f"output_dir={tmp_path / 'killed'}"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    state = None
    while time.time() < deadline and proc.poll() is None:
        found = list((tmp_path / "killed").glob("*/*/checkpoints/last.ckpt"))
        if found:
            state = torch.load(found[0], map_location="cpu", weights_only=True)  # written atomically
            if state["epoch"] >= 1:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert state is not None and state["epoch"] == 1, "the kill must land in the third epoch"
    (killed,) = _runs(tmp_path / "killed")
    assert not (killed / "final.ckpt").exists() and not (killed / "summary.json").exists()
    history = decode_history(state["state_dict"]["compression_history"])
    assert history and history[0]["kind"] == "prune", "a prune happened before the kill"

    last = killed / "checkpoints" / "last.ckpt"
    resumed = _cli(*args, f"resume_from={last}", f"output_dir={tmp_path / 'resumed'}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = _cli(*args, f"output_dir={tmp_path / 'straight'}", cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]
    a = torch.load(_runs(tmp_path / "resumed")[0] / "final.ckpt", weights_only=True)["state_dict"]
    b = torch.load(_runs(tmp_path / "straight")[0] / "final.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert decode_history(a["compression_history"]) == decode_history(b["compression_history"])
    for key in a:
        assert a[key].shape == b[key].shape, key
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6, rtol=1e-5), key


def test_a_full_disk_stops_the_run_with_one_line_and_keeps_the_last_good_checkpoint(
    real_fmnist: Path, tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    # a dense LeNet-300-100 checkpoint (weights and momentum) is about 2.1 MB: on 3 MB the second cannot be
    # written beside the first
    dense = ROOT / "configs" / "lenet300_fmnist.yaml"
    with mounted_tmpfs(disk, "size=3m") as mounted:
        if not mounted:
            pytest.skip("cannot mount a small filesystem here; the simulated failure test covers it")
        proc = _cli(
            "train", str(dense), *FAST[:4], "trainer.max_epochs=4", f"output_dir={disk}", cwd=tmp_path
        )
        line = _one_error_line(proc, "cannot write checkpoint", "No space left on device", upfront=False)
        (run,) = _runs(disk)
        assert str(run / "checkpoints") in line
        state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
        assert state["epoch"] == 0, "the first epoch's checkpoint is intact; training stopped at the second"
        assert not list((run / "checkpoints").glob("*.part"))


def test_a_failed_write_never_replaces_a_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same guarantee where no filesystem can be mounted: the write fails half-way."""
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    from lightning_compress.callbacks import AtomicCheckpointIO

    target = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 0, "w": torch.ones(3)}, target)

    def half_then_full(
        self: TorchCheckpointIO, checkpoint: dict, path: str, storage_options: object = None
    ) -> None:
        Path(path).write_bytes(b"\x80\x02 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", half_then_full)
    with pytest.raises(OSError, match=f"cannot write checkpoint {target}: No space left on device"):
        io.save_checkpoint({"epoch": 1, "w": torch.zeros(3)}, target)
    assert torch.load(target, weights_only=True)["epoch"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_a_read_only_output_folder_is_one_line_before_training(tiny_idx_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    with mounted_tmpfs(folder, "size=1m,ro") as mounted:
        if not mounted:  # no mount here: a path under a regular file cannot be created either
            (tmp_path / "file").write_text("")
            folder = tmp_path / "file" / "runs"
        proc = _cli("train", str(GS), f"data.data_dir={tiny_idx_dir}", f"output_dir={folder}", cwd=tmp_path)
        _one_error_line(proc, "output_dir", str(folder))


def _finished_run(tiny_idx_dir: Path, tmp_path: Path) -> Path:
    proc = _cli(
        "train", str(GS), f"data.data_dir={tiny_idx_dir}", "data.val_size=16", "data.batch_size=16",
        "trainer.max_epochs=1", "trainer.enable_progress_bar=false", f"output_dir={tmp_path / 'ok'}",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _runs(tmp_path / "ok")[0]


def test_truncated_checkpoints_are_one_line_and_leave_no_run_folder(
    tiny_idx_dir: Path, tmp_path: Path
) -> None:
    run = _finished_run(tiny_idx_dir, tmp_path)
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes((run / "final.ckpt").read_bytes()[:5000])
    _one_error_line(_cli("neurons", str(broken), cwd=tmp_path), "checkpoint", str(broken))
    out = tmp_path / "resumed"
    proc = _cli(
        "train", str(GS), f"data.data_dir={tiny_idx_dir}", f"resume_from={broken}", f"output_dir={out}",
        cwd=tmp_path,
    )  # fmt: skip
    _one_error_line(proc, "resume_from", str(broken), "not a readable checkpoint")
    assert not _runs(out), "no run folder for a run that never started"


def _make_dirs(args: tuple[str, multiprocessing.synchronize.Barrier]) -> str:
    output, barrier = args
    barrier.wait()
    return str(make_run_dir(RunConfig(output_dir=output, name="race")))


def test_runs_started_at_the_same_instant_get_their_own_folders(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Manager().Barrier(8)
    with ctx.Pool(8) as pool:
        folders = pool.map(_make_dirs, [(str(tmp_path), barrier)] * 8)
    assert len(set(folders)) == 8 and all(Path(f).is_dir() for f in folders)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"name: caf\xe9\n", "not UTF-8 text"),
        (b"name: a\noptimizer:\n  lr: 0.1\n  lr: 0.2\n", "key 'lr' appears twice"),
        (b"", "the file is empty"),
    ],
    ids=["latin-1", "duplicate-key", "empty"],
)
def test_bad_config_files_are_one_line(tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    _one_error_line(_cli("train", str(path), f"output_dir={tmp_path / 'out'}", cwd=tmp_path), needle)
    assert not (tmp_path / "out").exists()


def test_an_override_that_is_not_yaml_is_one_line(tmp_path: Path) -> None:
    _one_error_line(_cli("train", str(GS), "optimizer.lr==", cwd=tmp_path), "optimizer.lr", "not valid YAML")


def test_a_corrupt_data_file_is_one_line_before_training(tiny_idx_dir: Path, tmp_path: Path) -> None:
    images = tiny_idx_dir / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[: len(images.read_bytes()) // 2])
    out = tmp_path / "out"
    proc = _cli("train", str(GS), f"data.data_dir={tiny_idx_dir}", f"output_dir={out}", cwd=tmp_path)
    _one_error_line(proc, "data:")
    assert not _runs(out)


def test_summary_of_a_finished_run_is_complete(tiny_idx_dir: Path, tmp_path: Path) -> None:
    run = _finished_run(tiny_idx_dir, tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 1 and (run / "checkpoints" / "last.ckpt").is_file()
    assert not list(run.rglob("*.part"))


@pytest.mark.parametrize(
    ("config", "override", "needles"),
    [
        (
            "lr_lenet300_fmnist",
            "compression.low_rank.include=[nosuch]",
            ["compression.low_rank.include", "nosuch"],
        ),
        (
            "dalr_lenet300_fmnist",
            "compression.low_rank_compression.include=[nosuch]",
            ["compression.low_rank_compression.include"],
        ),
        (
            "gs_lenet300_fmnist",
            "compression.group_sparsity.layer_strengths={nosuch: 1}",
            ["compression.group_sparsity.layer_strengths", "nosuch"],
        ),
        # a compression epoch past the fit's end would train without compressing, without a word
        (
            "dalr_lenet300_fmnist",
            "trainer.max_epochs=2",
            ["compression.low_rank_compression.at_epoch", "never reached"],
        ),
        ("lr_lenet300_fmnist", "compression.low_rank.layer_strengths=[1,2]", ["must be a mapping"]),
    ],
)
def test_what_needs_the_model_is_one_line_before_training(
    tiny_idx_dir: Path, tmp_path: Path, config: str, override: str, needles: list[str]
) -> None:
    proc = _cli(
        "train",
        config,
        f"data.data_dir={tiny_idx_dir}",
        "data.val_size=16",
        override,
        "output_dir=out",
        cwd=tmp_path,
    )
    _one_error_line(proc, *needles)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()], "nothing written"


def test_usage_errors_and_a_folder_as_config_are_one_line(tmp_path: Path) -> None:
    proc = _cli(
        "compress", "x.ckpt", "--method", "tucker", "--params", "0.5", "--out", "o.ckpt", cwd=tmp_path
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "invalid choice: 'tucker'" in proc.stderr and "'dalr'" in proc.stderr
    (tmp_path / "folder").mkdir()
    _one_error_line(_cli("train", "folder", cwd=tmp_path), "is a folder, not a config file")


def test_compress_to_a_budget_below_rank_one_is_one_line(tiny_idx_dir: Path, tmp_path: Path) -> None:
    train = _cli(
        "train",
        "lenet300_fmnist",
        f"data.data_dir={tiny_idx_dir}",
        "data.val_size=16",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "output_dir=out",
        cwd=tmp_path,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    (final,) = tmp_path.glob("out/*/*/final.ckpt")
    proc = _cli(
        "compress", str(final), "--method", "svd", "--params", "2.0", "--out", "small.ckpt", cwd=tmp_path
    )
    _one_error_line(proc, "--params", "below rank 1")  # before the test pass: the only line
    assert not (tmp_path / "small.ckpt").exists()
