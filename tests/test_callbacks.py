from __future__ import annotations

import copy
import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_compress.callbacks import GroupSparsity, StructuredPruning
from lightning_compress.models import Classifier
from lightning_compress.surgery import get_history

LENET5_ROOTS = ["model.features.0", "model.features.3", "model.classifier.1"]


def _loader(n: int = 64, seed: int = 0) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=False)


def _trainer(tmp_path: Path, callbacks: list, **kwargs) -> pl.Trainer:
    defaults = dict(
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        deterministic=True,
    )
    defaults.update(kwargs)
    return pl.Trainer(callbacks=callbacks, **defaults)


def _module(scheduler: str = "cosine") -> Classifier:
    pl.seed_everything(0, verbose=False)
    return Classifier(
        "lenet300_100", model_kwargs={"hidden": [32, 16]}, lr=0.1, scheduler=scheduler, step_size=1, gamma=0.5
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strength": -1.0}, "strength"),
        ({"strength": float("nan")}, "strength"),
        ({"strength": float("inf")}, "strength"),
        ({"l1_ratio": 1.5}, "l1_ratio"),
        ({"l1_ratio": -0.1}, "l1_ratio"),
        ({"schedule": "daily"}, "schedule"),
        ({"every_n_steps": 0}, "every_n_steps"),
        ({"groups": "rows"}, "groups"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
        ({"layer_strengths": {"model.1": -2.0}}, "layer_strengths"),
        ({"include": "model.1"}, "include"),
        ({"stop_epoch": 0}, "stop_epoch"),
        ({"warmup_epochs": 2, "stop_epoch": 2}, "stop_epoch"),
        ({"cost": "flops"}, "cost"),
        ({"cost": "macs", "cost_exponent": -1.0}, "cost_exponent"),
        ({"keep_ratio": 1.0}, "keep_ratio"),
        ({"keep_ratio": -0.1}, "keep_ratio"),
    ],
)
def test_group_sparsity_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        GroupSparsity(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threshold": -1.0}, "threshold"),
        ({"relative_threshold": 1.0}, "relative_threshold"),
        ({"min_width": 0}, "min_width"),
        ({"every_n_epochs": 0}, "every_n_epochs"),
        ({"epochs": [-1]}, "epochs"),
    ],
)
def test_structured_pruning_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        StructuredPruning(**kwargs)


def test_pattern_matching_no_layer_fails_before_training(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, [GroupSparsity(0.1, exclude=["model.9"])])
    with pytest.raises(ValueError, match="exclude entry 'model.9' matches no layer"):
        trainer.fit(_module(), _loader())


def test_prox_once_per_optimizer_step_with_accumulation(tmp_path: Path) -> None:
    gs = GroupSparsity(0.5, log_effective_size=False)
    trainer = _trainer(tmp_path, [gs], accumulate_grad_batches=2, max_epochs=1)
    module = _module()
    trainer.fit(module, _loader())
    assert gs._steps == trainer.global_step == 2  # 4 batches, 2 per step
    assert sum(gs.zero_groups(module).values()) > 0  # exact zeros


def test_epoch_schedule_and_warmup(tmp_path: Path) -> None:
    gs = GroupSparsity(0.5, schedule="epoch", warmup_epochs=1, log_effective_size=False)
    module = _module()
    trainer = _trainer(tmp_path, [gs], max_epochs=1)
    trainer.fit(module, _loader())
    assert sum(gs.zero_groups(module).values()) == 0  # still warming up
    module2 = _module()
    gs2 = GroupSparsity(0.5, schedule="epoch", log_effective_size=False)
    _trainer(tmp_path, [gs2], max_epochs=1).fit(module2, _loader())
    assert sum(gs2.zero_groups(module2).values()) > 0


def test_stop_epoch_ends_regularization(tmp_path: Path) -> None:
    """After stop_epoch no prox runs: zeroed groups stay zero (nothing revives them) but the rest grows back."""
    gs = GroupSparsity(0.5, stop_epoch=1, log_effective_size=False)
    module = _module()
    norms = []

    class Record(pl.Callback):
        def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            norms.append(float(pl_module.model[1].weight.norm()))

    _trainer(tmp_path, [gs, Record()], max_epochs=3).fit(module, _loader())
    assert gs.factor() == 0.0 and norms[2] > norms[0]


def test_subgradient_mode_shrinks_norms(tmp_path: Path) -> None:
    plain, reg = _module(), _module()
    _trainer(tmp_path, [], max_epochs=1).fit(plain, _loader())
    gs = GroupSparsity(0.05, schedule="subgradient", log_effective_size=False)
    _trainer(tmp_path, [gs], max_epochs=1).fit(reg, _loader())
    assert reg.model[1].weight.norm() < 0.9 * plain.model[1].weight.norm()


def test_mid_fit_prune_keeps_every_layer_training(tmp_path: Path) -> None:
    module = _module()

    class Snapshot(pl.Callback):
        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if trainer.current_epoch == 1:
                self.after_prune = {k: v.detach().clone() for k, v in pl_module.named_parameters()}

    snap = Snapshot()
    pruning = StructuredPruning(epochs=[0], at_fit_end=False)
    trainer = _trainer(tmp_path, [GroupSparsity(0.05, log_effective_size=False), pruning, snap], max_epochs=2)
    trainer.fit(module, _loader())
    assert module.model[1].out_features < 32 and len(get_history(module)) >= 1
    for name, param in module.named_parameters():
        assert param.shape == snap.after_prune[name].shape
        assert not torch.equal(param, snap.after_prune[name]), f"{name} did not update after the prune"
    # the scheduler still drives the same optimizer, at its position (cosine over 2 epochs ends at 0)
    optimizer = trainer.optimizers[0]
    assert trainer.lr_scheduler_configs[0].scheduler.optimizer is optimizer
    assert math.isclose(optimizer.param_groups[0]["lr"], 0.0, abs_tol=1e-12)
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {
        id(p) for p in module.model.parameters()
    }


def test_huge_strength_stops_at_min_width_with_warning(tmp_path: Path) -> None:
    module = _module()
    callbacks = [GroupSparsity(100.0, log_effective_size=False), StructuredPruning(min_width=3)]
    with pytest.warns(UserWarning, match="min_width=3"):
        _trainer(tmp_path, callbacks, max_epochs=1).fit(module, _loader())
    assert module.model[1].out_features == 3 and module.model[3].out_features == 3


def test_keep_ratio_floors_every_layer_at_its_fit_start_width(tmp_path: Path) -> None:
    """Trimmed group lasso: a strength that kills every other group leaves ceil(0.25 * width) per layer,
    unshrunk, and a later prune does not lower the floor (it is a fraction of the width at fit start)."""
    module = _module()
    gs = GroupSparsity(100.0, keep_ratio=0.25, log_effective_size=False)
    trainer = _trainer(tmp_path, [gs, StructuredPruning(every_n_epochs=1)], max_epochs=3)
    trainer.fit(module, _loader())
    assert module.model[1].out_features == 8 and module.model[3].out_features == 4
    assert all(module.model[i].weight.norm(dim=1).min() > 0.1 for i in (1, 3))
    assert gs.state_dict()["widths"] == {"model.1": 32, "model.3": 16}
    # the penalty counts only the trimmed (zero) groups: nothing is left to penalize
    assert gs.penalty(module) == 0.0


def _run(
    tmp_path: Path, max_epochs: int, ckpt_path: str | None = None, save: bool = False, keep_ratio: float = 0.0
) -> Classifier:
    # a step schedule: a cosine one would depend on max_epochs, which differs between the runs compared
    module = _module(scheduler="step")
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, save_top_k=0)
    callbacks = [
        GroupSparsity(0.05, keep_ratio=keep_ratio, log_effective_size=False),
        StructuredPruning(epochs=[1] if keep_ratio else [0], at_fit_end=False),
    ]
    trainer = _trainer(
        tmp_path,
        [*callbacks, checkpoint] if save else callbacks,
        max_epochs=max_epochs,
        enable_checkpointing=save,
    )
    trainer.fit(module, _loader(), ckpt_path=ckpt_path)
    return module


@pytest.mark.parametrize("keep_ratio", [0.0, 0.25])
def test_resume_after_prune_matches_uninterrupted_run(tmp_path: Path, keep_ratio: float) -> None:
    """With keep_ratio, the floor's base (the widths at the first fit's start) must come back from the
    checkpoint: the prune at epoch 1 leaves 8 of the first layer's 32 neurons, and a floor of 25% of 8
    would let the lasso zero more of them."""
    straight = _run(tmp_path / "a", max_epochs=3, keep_ratio=keep_ratio)
    _run(tmp_path / "b", max_epochs=2, save=True, keep_ratio=keep_ratio)
    last = tmp_path / "b" / "ckpt" / "last.ckpt"
    resumed = _run(tmp_path / "c", max_epochs=3, ckpt_path=str(last), keep_ratio=keep_ratio)
    assert get_history(resumed) == get_history(straight)
    state_a, state_c = straight.state_dict(), resumed.state_dict()
    assert state_a.keys() == state_c.keys()
    for key in state_a:
        assert state_a[key].shape == state_c[key].shape, key
        assert torch.allclose(state_a[key].float(), state_c[key].float(), atol=1e-6), key


def test_pruned_checkpoint_loads(tmp_path: Path) -> None:
    pruned = _run(tmp_path, max_epochs=2, save=True)
    last = tmp_path / "ckpt" / "last.ckpt"
    raw = torch.load(last, weights_only=True)
    assert "model.compression_history" not in raw["state_dict"] and "compression_history" in raw["state_dict"]
    loaded = Classifier.load_from_checkpoint(last)
    assert loaded.model[1].out_features == pruned.model[1].out_features < 32
    x = torch.randn(3, 1, 28, 28)
    assert torch.allclose(loaded.eval()(x), pruned.eval()(x), atol=1e-6)
    exported = torch.export.export(copy.deepcopy(loaded.model).eval(), (x,))
    assert torch.allclose(exported.module()(x), loaded(x), atol=1e-6)


def test_input_features_zeroed_and_removed_during_fit(tmp_path: Path) -> None:
    """Pixels that are always zero get no gradient: the input-group prox zeroes them and pruning removes them."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 28, 28, generator=gen)
    x[:, :, :4, :] = 0  # four dead rows of pixels: 112 features
    loader = DataLoader(TensorDataset(x, torch.randint(0, 10, (64,), generator=gen)), batch_size=16)
    module = _module()
    gs = GroupSparsity(0.0, input_layers=["model.1"], input_strength=0.03, log_effective_size=False)
    _trainer(tmp_path, [gs, StructuredPruning(input_layers=["model.1"])], max_epochs=4).fit(module, loader)
    layer = module.model[1]
    assert 0 < layer.in_features <= 784 - 112
    assert not set(range(112)) & set(layer.input_index.tolist())


def test_macs_cost_shifts_the_lasso_from_fc_neurons_to_conv_channels() -> None:
    """On LeNet-5 a conv1 channel saves ~14x the model's MACs per parameter, an fc neuron ~0.2x."""
    shrink = {}
    for cost, exponent in (("params", 1.0), ("macs", 1.0), ("macs", 0.0)):
        pl.seed_everything(0, verbose=False)
        module = Classifier("lenet5")
        gs = GroupSparsity(1e-3, cost=cost, cost_exponent=exponent, log_effective_size=False)
        before = {n: module.get_submodule(n).weight.detach().flatten(1).norm(dim=1) for n in LENET5_ROOTS}
        gs.prox(module, step=0.05)
        shrink[f"{cost}^{exponent:g}"] = {
            n: float((before[n] - module.get_submodule(n).weight.detach().flatten(1).norm(dim=1)).mean())
            for n in LENET5_ROOTS
        }
    conv1, fc = LENET5_ROOTS[0], LENET5_ROOTS[2]
    assert shrink["macs^1"][conv1] > 5 * shrink["params^1"][conv1]
    assert shrink["macs^1"][fc] < 0.5 * shrink["params^1"][fc]
    assert shrink["macs^0"] == shrink["params^1"]  # exponent 0: the paper's weights


def test_macs_cost_during_fit_removes_conv_channels_first(tmp_path: Path) -> None:
    """Within fit (trainer attached, weights re-measured after each prune) the MACs-weighted lasso thins conv1."""
    pl.seed_everything(0, verbose=False)
    module = Classifier("lenet5", lr=0.05)
    gs = GroupSparsity(3e-2, cost="macs", log_effective_size=False)
    _trainer(tmp_path, [gs, StructuredPruning(every_n_epochs=1)], max_epochs=3).fit(module, _loader())
    conv1 = module.get_submodule(LENET5_ROOTS[0])
    fc = module.get_submodule(LENET5_ROOTS[2])
    assert conv1.out_channels < 20
    assert 1 - conv1.out_channels / 20 > 1 - fc.out_features / 500


def test_bn_groups_during_fit_prune_through_the_norm_and_pruning_follows(tmp_path: Path) -> None:
    """groups="bn": the prox shrinks BatchNorm entries only (filters untouched); StructuredPruning follows."""
    pl.seed_everything(0, verbose=False)
    module = Classifier("resnet_small", model_kwargs={"widths": [8, 16], "blocks": [1, 1]}, lr=0.05)
    inner, bn1 = module.model.layers[0].conv1, module.model.layers[0].bn1
    filters = inner.weight.detach().clone()
    gs = GroupSparsity(0.5, groups="bn", log_effective_size=False)
    gs.prox(module, step=0.05)
    assert torch.equal(inner.weight, filters)
    assert bool((bn1.weight < 1).all())
    with torch.no_grad():  # three weak channels: the lasso zeroes them first
        bn1.weight[:3] = 0.05
    pruning = StructuredPruning(every_n_epochs=1)
    trainer = _trainer(tmp_path, [gs, pruning], max_epochs=3)
    trainer.fit(module, _loader())
    assert pruning._mode(trainer) == "bn"
    assert 3 <= module.model.layers[0].conv1.out_channels <= 5
    assert sum(gs.zero_groups(module).values()) == 0  # every zeroed group was removed


def test_batchnorm_trains_in_train_mode_after_mid_fit_prunes(tmp_path: Path) -> None:
    """Tracing for groups and pruning must not leave BatchNorm in eval mode for the rest of fit."""

    class Modes(pl.Callback):
        def __init__(self) -> None:
            self.eval_modules: list[int] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
            self.eval_modules.append(sum(not m.training for m in pl_module.modules()))

    pl.seed_everything(0, verbose=False)
    module = Classifier("resnet_small", model_kwargs={"widths": [8, 16], "blocks": [1, 1]}, lr=0.05)
    modes = Modes()
    pruning = StructuredPruning(every_n_epochs=1)
    block = module.model.layers[0]
    with torch.no_grad():  # three dead channels: the lasso keeps them at zero, pruning removes them
        for t in (block.conv1.weight, block.bn1.weight, block.bn1.bias):
            t[:3] = 0.0
    gs = GroupSparsity(0.3, log_effective_size=True)
    _trainer(tmp_path, [gs, pruning, modes], max_epochs=3).fit(module, _loader())
    assert pruning.removed_total > 0
    assert modes.eval_modules == [0] * 12
