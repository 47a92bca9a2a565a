from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lightning_compress.config import ConfigError, RunConfig, load_config
from tests.zoo import zoo_if_named

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_loads(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zoo_if_named(path.read_text(), monkeypatch)  # a third-party model: from the zoo
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["optimizer.lr=-0.1"], "optimizer.lr"),
        (["optimizer.lr=abc"], "optimizer.lr"),
        (["optimizer.learning_rate=0.1"], "optimizer.learning_rate"),
        (["model.name=alexnet"], "model.name"),
        (["data.batch_size=0"], "data.batch_size"),
        (["data.data_dir=/nonexistent/dir"], "data.data_dir"),
        (["trainer.max_epochs=0"], "trainer.max_epochs"),
        (["trainer.limit_train_batches=1.5"], "trainer.limit_train_batches"),
        (["trainer.limit_train_batches=abc"], "trainer.limit_train_batches"),
        (["model.kwargs.hidden=[0,5]"], "model.kwargs"),
        (["resume_from=/nonexistent.ckpt"], "resume_from"),
        (["scheduler.gamma=2"], "scheduler.gamma"),
        (["optimizer.momentum=1.5"], "optimizer.momentum"),
        (["nokey"], "nokey"),
    ],
)
def test_bad_values_name_the_key(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(CONFIGS[0], overrides)
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ")


GS = next(p for p in CONFIGS if p.name == "gs_lenet300_fmnist.yaml")


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["compression.group_sparsity.strength=-1"], "compression.group_sparsity.strength"),
        (["compression.group_sparsity.strength=nan"], "compression.group_sparsity.strength"),
        (["compression.group_sparsity.l1_ratio=2"], "compression.group_sparsity.l1_ratio"),
        (["compression.group_sparsity.schedule=daily"], "compression.group_sparsity.schedule"),
        (["compression.group_sparsity.every_n_steps=0"], "compression.group_sparsity.every_n_steps"),
        (["compression.group_sparsity.keep_ratio=1.5"], "compression.group_sparsity.keep_ratio"),
        (["compression.pruning.min_width=0"], "compression.pruning.min_width"),
        (["compression.pruning.relative_threshold=1.5"], "compression.pruning.relative_threshold"),
        (["compression.pruning.thresh=1"], "compression.pruning.thresh"),
    ],
)
def test_bad_compression_values_name_the_key(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(GS, overrides)
    assert info.value.key == key, str(info.value)


@pytest.mark.parametrize(
    ("override", "key", "shape"),
    [
        ("compression.low_rank.layer_strengths=[1,2]", "compression.low_rank.layer_strengths", "a mapping"),
        ("compression.low_rank.exclude={a: 1}", "compression.low_rank.exclude", "a list"),
    ],
)
def test_an_override_of_the_wrong_container_names_its_key(override: str, key: str, shape: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(next(p for p in CONFIGS if p.name == "lr_lenet300_fmnist.yaml"), [override])
    assert info.value.key == key and f"must be {shape}" in str(info.value)


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("optimizer: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.yaml")
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listy)


def test_unknown_key_in_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("trainer:\n  max_epoch: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "trainer.max_epoch"


@pytest.mark.parametrize(
    "extra",
    [["optimizer.lr=-1"], ["trainer.epochs=3"], ["--", "data.batch_size=x"]],
)
def test_cli_bad_config_one_line_exit_2(extra: list[str], tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "lightning_compress.cli.main", "train", str(CONFIGS[0]), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("lightning-compress: error: ")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_cli_missing_config_file(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "lightning_compress.cli.main", "train", "missing.yaml"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "file not found: 'missing.yaml'" in proc.stderr and "Traceback" not in proc.stderr
