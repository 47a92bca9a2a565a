"""Size targets: GroupSparsity / LowRank(target_params=, target_macs=) reach the size asked for during fit."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import lightning.pytorch as pl
import optuna
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from optuna.trial import TrialState
from torch.utils.data import DataLoader, TensorDataset

from lightning_compress._checks import ArgumentError
from lightning_compress.callbacks import GroupSparsity, LowRank, StructuredPruning
from lightning_compress.cli.main import main
from lightning_compress.data import FashionMNISTDataModule
from lightning_compress.models import Classifier, LeNet300100, PatchTransformer, SmallResNet
from lightning_compress.surgery import (
    SizeModel,
    count_params_and_macs,
    effective_size,
    find_groups,
    get_history,
)
from lightning_compress.sweep.load import load_sweep
from lightning_compress.sweep.storage import open_storage

from .sweep_helpers import write_sweep

X = torch.zeros(1, 1, 28, 28)
OPTIMIZERS = {"sgd": {"optimizer": "sgd", "lr": 0.05}, "adamw": {"optimizer": "adamw", "lr": 1e-3}}


def _trainer(tmp_path: Path, callbacks: list, **kwargs) -> pl.Trainer:
    settings = dict(
        max_epochs=3,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    return pl.Trainer(callbacks=callbacks, **{**settings, **kwargs})


def _size(module: Classifier) -> dict[str, int]:
    params, macs = count_params_and_macs(module.model, X)
    return {"params": params, "macs": macs}


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_lenet300_reaches_a_fifth_of_its_parameters(
    real_fmnist: Path, tmp_path: Path, optimizer: str
) -> None:
    """Real data, 3 short epochs: the same target with optimizers whose step sizes differ by ~50x."""
    pl.seed_everything(0, verbose=False)
    module = Classifier("lenet300_100", scheduler="cosine", momentum=0.9, **OPTIMIZERS[optimizer])
    dense = _size(module)["params"]
    dm = FashionMNISTDataModule(real_fmnist, batch_size=128)
    callbacks = [GroupSparsity(target_params=0.2, stop_epoch=2), StructuredPruning(every_n_epochs=1)]
    _trainer(tmp_path, callbacks, limit_train_batches=40, limit_val_batches=0).fit(module, dm)
    assert abs(_size(module)["params"] / dense - 0.2) <= 0.02
    assert all(w > 1 for w in [module.model[1].out_features, module.model[3].out_features])


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_batchnorm_resnet_reaches_a_fifth_of_its_macs(
    real_fmnist: Path, tmp_path: Path, optimizer: str
) -> None:
    pl.seed_everything(0, verbose=False)
    module = Classifier("resnet_small", scheduler="cosine", momentum=0.9, **OPTIMIZERS[optimizer])
    dense = _size(module)["macs"]
    dm = FashionMNISTDataModule(real_fmnist, batch_size=32)
    callbacks = [
        GroupSparsity(target_macs=0.2, keep_ratio=0.1, stop_epoch=2),
        StructuredPruning(every_n_epochs=1),
    ]
    _trainer(tmp_path, callbacks, limit_train_batches=12, limit_val_batches=0).fit(module, dm)
    assert abs(_size(module)["macs"] / dense - 0.2) <= 0.02


def _loader(n: int = 64) -> DataLoader:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen)
    return DataLoader(TensorDataset(x, y), batch_size=16)


def _small() -> Classifier:
    pl.seed_everything(0, verbose=False)
    return Classifier(
        "lenet300_100", model_kwargs={"hidden": [32, 16]}, lr=0.1, scheduler="step", step_size=1
    )


def test_a_target_the_floors_forbid_fails_before_any_step(tmp_path: Path) -> None:
    module = _small()
    before = copy.deepcopy(module.state_dict())
    gs = GroupSparsity(target_params=0.05, keep_ratio=0.5, example_input=X)
    with pytest.raises(ArgumentError, match=r"target_params=0.05 cannot be reached: the floors") as err:
        _trainer(tmp_path, [gs]).fit(module, _loader())
    assert "\n" not in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_a_count_at_or_above_the_dense_size_fails_before_any_step(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match=r"target_params=1000000 is not below the model's params"):
        _trainer(tmp_path, [GroupSparsity(target_params=1_000_000, example_input=X)]).fit(_small(), _loader())


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"target_params": 0.0}, "target_params"),
        ({"target_params": -0.2}, "target_params"),
        ({"target_params": 1.0 + 0.5}, "target_params"),
        ({"target_macs": True}, "target_macs"),
        ({"target_macs": "half"}, "target_macs"),
        ({"target_params": 0.2, "target_macs": 0.2}, "target_macs"),
        ({"target_params": 0.2, "strength": 1e-3}, "strength"),
        ({"target_params": 0.2, "ramp_epochs": 2}, "ramp_epochs"),
        ({"target_params": 0.2, "schedule": "subgradient"}, "schedule"),
        ({"target_params": 0.2, "l1_ratio": 0.5}, "l1_ratio"),
    ],
)
def test_bad_targets_name_their_argument(kwargs: dict, argument: str) -> None:
    with pytest.raises(ArgumentError) as err:
        GroupSparsity(**kwargs)
    assert err.value.argument == argument and argument in str(err.value) and "\n" not in str(err.value)


def test_epoch_schedule_and_warmup_reach_the_target(tmp_path: Path) -> None:
    module = _medium()
    dense = _size(module)["params"]
    gs = GroupSparsity(target_params=0.3, schedule="epoch", warmup_epochs=1, stop_epoch=3)
    _trainer(tmp_path, [gs, StructuredPruning(every_n_epochs=1)], max_epochs=4).fit(module, _loader())
    assert abs(_size(module)["params"] / dense - 0.3) <= 0.02


def test_low_rank_target_conflicts_with_its_rank_rules() -> None:
    with pytest.raises(ArgumentError, match="param_ratio"):
        LowRank(target_params=0.3, param_ratio=0.5)
    with pytest.raises(ArgumentError, match="only_if_faster"):
        LowRank(target_params=0.3, only_if_faster=True)
    with pytest.raises(ArgumentError, match="strength"):
        LowRank(target_macs=0.3, strength=1e-3)


def test_cli_target_error_is_one_line_before_training(
    tiny_idx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "train",
            "gs_lenet300_fmnist",
            f"data.data_dir={tiny_idx_dir}",
            "compression.group_sparsity.strength=null",
            "compression.group_sparsity.target_params=1.5",
            f"output_dir={tmp_path}",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "target_params" in err[0]
    assert not list(tmp_path.glob("*/*/final.ckpt"))


def test_cli_target_the_floors_forbid_is_one_line_before_training(
    tiny_idx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "train",
            "gs_lenet300_fmnist",
            f"data.data_dir={tiny_idx_dir}",
            "compression.group_sparsity.strength=null",
            "compression.group_sparsity.target_params=0.01",
            "compression.group_sparsity.keep_ratio=0.5",
            "data.val_size=16",
            f"output_dir={tmp_path / 'out'}",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "compression.group_sparsity.target_params" in err[0] and "cannot be reached" in err[0]
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def _resumable(
    tmp_path: Path, max_epochs: int, ckpt_path: str | None = None, save: bool = False
) -> Classifier:
    module = _small()
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, save_top_k=0)
    callbacks = [GroupSparsity(target_params=0.3, stop_epoch=3), StructuredPruning(every_n_epochs=1)]
    trainer = _trainer(
        tmp_path,
        [*callbacks, checkpoint] if save else callbacks,
        max_epochs=max_epochs,
        enable_checkpointing=save,
    )
    trainer.fit(module, _loader(), ckpt_path=ckpt_path)
    return module


def test_a_resumed_run_keeps_steering_from_where_it_was(tmp_path: Path) -> None:
    straight = _resumable(tmp_path / "a", max_epochs=4)
    _resumable(tmp_path / "b", max_epochs=2, save=True)
    resumed = _resumable(tmp_path / "c", max_epochs=4, ckpt_path=str(tmp_path / "b" / "ckpt" / "last.ckpt"))
    assert get_history(resumed) == get_history(straight)
    a, c = straight.state_dict(), resumed.state_dict()
    assert a.keys() == c.keys()
    for key in a:
        assert a[key].shape == c[key].shape and torch.allclose(a[key].float(), c[key].float(), atol=1e-6), key
    dense, neuron = _size(_small())["params"], 784 + 1 + 16  # one first-layer neuron is 3% of this model
    assert 0.3 * dense - neuron <= _size(straight)["params"] <= 0.3 * dense


def test_target_logged_each_epoch_and_reported_at_fit_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    module = _small()
    logger = CSVLogger(tmp_path, name="log")
    gs = GroupSparsity(target_params=0.4, stop_epoch=2)
    with caplog.at_level("INFO"):
        _trainer(tmp_path, [gs], logger=logger).fit(module, _loader())
    with open(Path(logger.log_dir) / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    logged = [r for r in rows if r.get("group_sparsity/target_params")]
    assert len(logged) == 3
    dense = _size(_small())["params"]
    assert float(logged[0]["group_sparsity/target_params"]) == pytest.approx(0.4 * dense)
    assert float(logged[0]["group_sparsity/strength"]) > 0  # steered during the run
    assert float(logged[-1]["group_sparsity/effective_params"]) <= 0.4 * dense
    line = next(r.message for r in caplog.records if r.message.startswith("GroupSparsity: "))
    assert "against the target" in line and "(40.0% of dense)" in line


def _medium() -> Classifier:
    pl.seed_everything(0, verbose=False)  # one rank or neuron of the first layer is 1.6% of it
    return Classifier(
        "lenet300_100", model_kwargs={"hidden": [64, 32]}, lr=0.1, scheduler="step", step_size=1
    )


def test_low_rank_alone_and_with_group_lasso_reach_their_targets(tmp_path: Path) -> None:
    module = _medium()
    dense = _size(module)["params"]
    lr = LowRank(target_params=0.3, every_n_steps=2, stop_epoch=2)
    _trainer(tmp_path, [lr]).fit(module, _loader())
    assert abs(_size(module)["params"] / dense - 0.3) <= 0.02
    assert any(r["kind"] == "factorize" for r in get_history(module))
    both = _medium()
    callbacks = [
        GroupSparsity(target_params=0.5, stop_epoch=2),
        LowRank(target_params=0.3, every_n_steps=2, stop_epoch=3),
        StructuredPruning(every_n_epochs=1),
    ]
    _trainer(tmp_path, callbacks, max_epochs=4).fit(both, _loader())
    assert abs(_size(both)["params"] / dense - 0.3) <= 0.02
    kinds = {r["kind"] for r in get_history(both)}
    assert {"factorize", "prune"} <= kinds


@pytest.mark.parametrize("model", [LeNet300100(), SmallResNet(), PatchTransformer()], ids=type)
def test_size_model_counts_parameters_exactly(model: torch.nn.Module) -> None:
    """Against a copy with the groups zeroed and removed: parameters to the unit, MACs within 10% (the
    MACs of parameter-free operations are held at their dense value; a fit calibrates them)."""
    families = find_groups(model, X)
    sizes = SizeModel(model, families, X)
    removed = torch.rand(sizes.num_groups, generator=torch.Generator().manual_seed(0)) < 0.5
    for start in sizes.offsets[:-1]:
        removed[start] = False  # a family is never emptied
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        for f, family in enumerate(families):
            gone = torch.nonzero(removed[sizes.offsets[f] : sizes.offsets[f + 1]]).flatten()
            for piece in family.pieces(zeroed, "incoming"):
                positions = (
                    piece.index if piece.index is not None else torch.arange(piece.tensor.shape[piece.dim])
                )
                roots = piece.root if piece.root is not None else torch.arange(len(positions))
                piece.tensor.index_fill_(piece.dim, positions[torch.isin(roots, gone)], 0.0)
    exact, modelled = effective_size(zeroed, X), sizes.size(removed)
    assert modelled["params"] == exact["params"] < sizes.dense["params"]
    assert modelled["macs"] == pytest.approx(exact["macs"], rel=0.1)


def test_a_sweep_searches_the_size_itself(tiny_idx_dir: Path, tmp_path: Path) -> None:
    """A method whose search space is the target: every trial ends at the size it sampled."""
    methods = {
        "group_lasso_target": {
            "compression": {"group_sparsity": {"target_params": 0.3}, "pruning": {}},
            "search_space": {
                "compression.group_sparsity.target_params": {"type": "float", "low": 0.15, "high": 0.6}
            },
        }
    }
    sweep = write_sweep(
        tmp_path, tiny_idx_dir, n_trials=3, epochs=2, methods=methods, objectives={"accuracy_floor": 0.0}
    )
    assert main(["sweep", str(sweep)]) == 0
    cfg = load_sweep(sweep)
    study = optuna.load_study(
        study_name=cfg.name, storage=open_storage(str(Path(cfg.output_dir) / cfg.name / "journal.log"))
    )
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3
    dense, neuron = _size(_small())["params"], 784 + 1 + 16
    for trial in complete:
        (target,) = [v for k, v in trial.params.items() if k.endswith("target_params")]
        assert target * dense - neuron <= trial.values[0] <= target * dense
