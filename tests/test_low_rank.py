"""Low-rank training: SVT against numpy, exact full-rank splits, rank rules, mid-fit splits that keep
training, replay from checkpoints, the combination with group lasso, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_compress._checks import ArgumentError
from lightning_compress.callbacks import GroupSparsity, LowRank, StructuredPruning
from lightning_compress.functional import (
    break_even_rank,
    choose_rank,
    nuclear_norm,
    singular_value_threshold,
    truncated_svd,
)
from lightning_compress.models import Classifier
from lightning_compress.regularizers import NuclearNorm
from lightning_compress.surgery import factorize_layer, factorized, get_history


def test_svt_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((7, 12))
    u, s, vh = np.linalg.svd(w, full_matrices=False)
    expected = (u * np.maximum(s - 1.5, 0)) @ vh
    got, rank = singular_value_threshold(torch.tensor(w), 1.5)
    assert np.allclose(got.numpy(), expected, atol=1e-10)
    assert rank == int((s > 1.5).sum())
    assert float(nuclear_norm(torch.tensor(w))) == pytest.approx(float(s.sum()))


def test_svt_of_a_conv_acts_on_the_reshaped_matrix() -> None:
    w = torch.randn(6, 3, 3, 3)
    got, rank = singular_value_threshold(w, 0.5)
    s = torch.linalg.svdvals(w.reshape(6, -1))
    assert got.shape == w.shape and rank == int((s > 0.5).sum())
    assert torch.allclose(torch.linalg.svdvals(got.reshape(6, -1))[:rank], s[:rank] - 0.5, atol=1e-5)


def test_randomized_svt_agrees_with_the_full_one_and_leaves_the_random_state_alone() -> None:
    gen = torch.Generator().manual_seed(0)  # what a layer looks like after a prox and some steps
    w = torch.randn(120, 12, generator=gen) @ torch.randn(12, 200, generator=gen) / 4
    w += 0.01 * torch.randn(120, 200, generator=gen)
    s = torch.linalg.svdvals(w)
    tau = float(s[12] + s[11]) / 2  # leaves rank 12
    full, rank = singular_value_threshold(w, tau)
    state = torch.get_rng_state()
    fast, fast_rank = singular_value_threshold(w, tau, rank_hint=rank)
    assert torch.equal(torch.get_rng_state(), state)
    assert rank == 12 and abs(fast_rank - rank) <= 1  # values at the threshold may fall either side
    assert float((fast - full).abs().max()) < 1e-3 * float(full.abs().max())
    # a hint below the new rank: every value the randomized SVD finds survives, the full SVD decides
    grown, grown_rank = singular_value_threshold(w, tau, rank_hint=1, oversample=2)
    assert grown_rank == 12 and torch.equal(grown, full)


def test_the_nuclear_norm_carries_its_rank_hints_through_a_checkpoint() -> None:
    model = Classifier("lenet300_100", model_kwargs={"hidden": [64, 32]})
    reg = NuclearNorm(0.5)
    reg.attach(model, torch.zeros(1, 1, 28, 28))
    reg.prox_(step=1.0)
    assert set(reg.ranks) == {"model.1", "model.3"} and reg.ranks["model.3"] <= 32
    fresh = NuclearNorm(0.5)
    fresh.load_state_dict(reg.state_dict())
    assert fresh.ranks == reg.ranks


def test_truncated_svd_is_the_best_rank_r_approximation() -> None:
    w = torch.randn(9, 14, dtype=torch.float64)
    s = torch.linalg.svdvals(w)
    a, b = truncated_svd(w, 4)
    assert float(torch.linalg.matrix_norm(w - a @ b)) == pytest.approx(float(s[4:].square().sum().sqrt()))


def test_rank_rules() -> None:
    s = torch.tensor([5.0, 3.0, 1.0, 0.5, 0.0])
    assert choose_rank(s) == 4 and choose_rank(s, tol=0.6) == 3 and choose_rank(s, rank=2) == 2
    assert choose_rank(s, energy=0.97) == 3  # (25 + 9 + 1) / 35.25 = 0.993 >= 0.97, 34 / 35.25 < 0.97
    m, n = 40, 60
    r = choose_rank(torch.ones(40), param_ratio=0.3, shape=(m, n))
    assert r * (m + n) <= 0.3 * m * n < (r + 1) * (m + n)
    assert break_even_rank(m, n) == pytest.approx(24.0)


@pytest.mark.parametrize(
    "layer",
    [
        nn.Linear(12, 7),
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.Conv2d(3, 8, (3, 2), dilation=2, bias=False),
    ],
    ids=["linear", "conv-stride-pad", "conv-dilated-nobias"],
)
def test_a_full_rank_split_reproduces_the_layer(layer: nn.Module) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 12) if isinstance(layer, nn.Linear) else torch.randn(2, 3, 11, 10)
    full = min(layer.weight.reshape(layer.weight.shape[0], -1).shape)
    pair = factorized(layer, full)  # type: ignore[arg-type]
    assert torch.allclose(pair(x), layer(x), atol=1e-5)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: truncated_svd(torch.zeros(3, 4), 0), "rank must be an int in"),
        (lambda: truncated_svd(torch.zeros(3, 4), 4), "rank must be an int in"),
        (lambda: choose_rank(torch.ones(3), energy=1.5), "energy"),
        (lambda: factorized(nn.Conv2d(4, 4, 3, groups=2), 2), "grouped"),
        (lambda: factorize_layer(nn.Sequential(nn.Conv2d(4, 4, 3, groups=2)), "0", 2), "grouped"),
        (lambda: NuclearNorm(-1.0), "strength"),
        (lambda: LowRank(energy=0.0), "energy"),
        (lambda: LowRank(split_epochs=[-1]), "split_epochs"),
        (lambda: LowRank(param_ratio=1.0), "param_ratio"),
        (lambda: LowRank(speed_batch=0), "speed_batch"),
        (lambda: LowRank(energy=0.9, param_ratio=0.1), "at most one"),
    ],
)
def test_bad_input_is_one_clear_error(call, match: str) -> None:
    with pytest.raises((ValueError, RuntimeError), match=match):
        call()


def test_a_layer_pattern_that_matches_nothing_is_named() -> None:
    reg = NuclearNorm(1.0, layer_strengths={"model.9": 1.0})
    with pytest.raises(ArgumentError, match="model.9"):
        reg.attach(Classifier("lenet300_100", model_kwargs={"hidden": [8, 4]}), torch.zeros(1, 1, 28, 28))


def _loader(n: int = 96) -> DataLoader:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen)
    return DataLoader(TensorDataset(x, y), batch_size=16)


def _trainer(tmp_path: Path, callbacks: list, epochs: int = 3) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        deterministic=True,
    )


class _Snapshot(pl.Callback):
    """The parameters right after the split at the end of epoch 0."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == 0:
            self.after_split = {k: v.detach().clone() for k, v in pl_module.named_parameters()}


def test_a_mid_fit_split_keeps_every_layer_training_and_replays(tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    module = Classifier("lenet300_100", model_kwargs={"hidden": [32, 16]}, lr=0.05)
    low = LowRank(2.0, every_n_steps=2, split_epochs=[0], split_at_fit_end=False)
    snap = _Snapshot()
    trainer = _trainer(tmp_path, [low, snap])
    trainer.fit(module, _loader())
    records = [r for r in get_history(module) if r["kind"] == "factorize"]
    assert records and all(r["rank"] < break_even_rank(32, 784) for r in records if r["module"] == "model.1")
    assert isinstance(module.model[1], nn.Sequential)
    for name, before in snap.after_split.items():
        assert not torch.equal(before, dict(module.named_parameters())[name]), f"{name} stopped training"
    path = tmp_path / "split.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, weights_only=True)
    restored = Classifier.load_from_checkpoint(path)
    assert get_history(restored) == get_history(module)
    x = torch.randn(4, 1, 28, 28)
    module.eval(), restored.eval()
    assert torch.allclose(restored(x), module(x), atol=1e-6)
    assert any(k.endswith("model.1.0.weight") for k in state["state_dict"])


def test_a_parameter_budget_split_happens_once_at_its_rank(tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    module = Classifier("lenet300_100", model_kwargs={"hidden": [32, 16]}, lr=0.05)
    low = LowRank(0.0, param_ratio=0.25, split_epochs=[0], split_at_fit_end=True)
    _trainer(tmp_path, [low], epochs=2).fit(module, _loader())
    ranks = {r["module"]: r["rank"] for r in get_history(module) if r["kind"] == "factorize"}
    assert ranks == {"model.1": int(0.25 * 32 * 784 / (32 + 784)), "model.3": int(0.25 * 32 * 16 / 48)}
    thin = module.model[1]  # the thin layers hold at most a quarter of the layer, and fit end left them
    assert sum(p.numel() for p in thin[0].parameters()) + thin[1].weight.numel() <= 0.25 * 32 * 784


def test_group_lasso_and_low_rank_in_one_trainer(tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    module = Classifier("lenet300_100", model_kwargs={"hidden": [32, 16]}, lr=0.05)
    gs = GroupSparsity(0.05, log_effective_size=False)
    low = LowRank(2.0, every_n_steps=2, split_epochs=[0], split_at_fit_end=False)
    _trainer(tmp_path, [gs, low, StructuredPruning(every_n_epochs=1)]).fit(module, _loader())
    kinds = [r["kind"] for r in get_history(module)]
    assert "factorize" in kinds and "prune" in kinds
    # after the split the group lasso still acts: it found groups in the thin layers and zeroed some
    assert any(name.startswith("model.1.") for name in gs.zero_groups(module))
    assert sum(p.numel() for p in module.parameters()) < 266_610 // 8


def test_input_pixels_and_a_split_of_the_same_layer_work_in_either_order() -> None:
    from lightning_compress.models import LeNet300100
    from lightning_compress.surgery import (
        InputSelectLinear,
        enable_history_restore,
        input_groups,
        remove_inputs,
    )

    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for pixels_first in (True, False):
        torch.manual_seed(0)
        model = LeNet300100(hidden=(12, 6)).eval()
        opt = torch.optim.Adam(model.parameters())
        model(x).sum().backward()
        opt.step()
        with torch.no_grad():
            model[1].weight[:, 100:300] = 0  # 200 dead pixels
        before = model(x)
        for step in ("pixels", "split") if pixels_first else ("split", "pixels"):
            if step == "pixels":
                remove_inputs(model, "1", list(range(100, 300)), optimizers=[opt])
            else:
                factorize_layer(model, "1", 12, optimizers=[opt])  # full rank: exact
        first = model[1][0]
        assert isinstance(first, InputSelectLinear) and first.in_features == 584 and first.out_features == 12
        assert torch.allclose(model(x), before, atol=1e-5)
        group = input_groups(model, "1")
        assert group.name == "1:inputs" and group.num_groups == 584 and group.slices[0].module == "1.0"
        loss = model(x).square().sum()
        loss.backward()
        opt.step()  # the optimizer holds the new layers' parameters
        assert opt.state[first.weight]["exp_avg"].shape == (12, 584)
        fresh = LeNet300100(hidden=(12, 6)).eval()
        enable_history_restore(fresh, x[:1])
        fresh.load_state_dict(model.state_dict())
        assert [r["kind"] for r in get_history(fresh)] == [r["kind"] for r in get_history(model)]
        assert torch.equal(fresh(x), model(x))


def test_only_if_faster_keeps_the_dense_layer_where_the_split_is_slower() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 2048),
        nn.ReLU(),
        nn.Linear(2048, 16),
        nn.ReLU(),
        nn.Linear(16, 16),
        nn.ReLU(),
    )
    module = Classifier(nn.Sequential(*net, nn.Linear(16, 10)))
    module.example_input_array = torch.zeros(1, 1, 28, 28)
    every = LowRank(0.0, param_ratio=0.01)
    fast = LowRank(0.0, param_ratio=0.01, only_if_faster=True, speed_batch=256)
    assert set(every.split_plan(module)) == {"model.1", "model.3", "model.5"}
    plan = fast.split_plan(module)  # a 2048 x 784 layer at rank 5 is faster; a 16 x 16 one at rank 1 is not
    assert "model.1" in plan and "model.5" not in plan
    assert sum(p.numel() for p in module.parameters()) == sum(p.numel() for p in net.parameters()) + 170


def test_the_split_is_at_the_rank_the_last_svt_left(tmp_path: Path) -> None:
    """Optimizer steps after the last SVT make the weight full rank again: the split must not look at it."""
    pl.seed_everything(0, verbose=False)
    module = Classifier("lenet300_100", model_kwargs={"hidden": [48, 32]}, lr=0.05)
    low = LowRank(1.5, every_n_steps=10, split_at_fit_end=True)  # 6 steps an epoch: the last SVT is stale
    _trainer(tmp_path, [low], epochs=4).fit(module, _loader())
    logged = dict(low.regularizer.ranks)
    shapes = {"model.1": (48, 784), "model.3": (32, 48)}
    split = {r["module"]: r["rank"] for r in get_history(module) if r["kind"] == "factorize"}
    assert set(logged) == set(shapes) and split
    assert split == {n: r for n, r in logged.items() if r < break_even_rank(*shapes[n])}


def test_low_rank_acts_on_layers_that_no_group_family_holds() -> None:
    """A Linear feeding a GroupNorm has no removable neurons, but its weight can still be low rank."""
    model = nn.Sequential(
        nn.Linear(16, 32), nn.GroupNorm(4, 32), nn.ReLU(), nn.Linear(32, 8), nn.ReLU(), nn.Linear(8, 2)
    )
    reg = NuclearNorm(strength=1.0)
    with pytest.warns(UserWarning, match="feature normalization"):
        from lightning_compress.surgery import find_groups

        grouped = {p for f in find_groups(model, torch.zeros(1, 16)) for p in f.layers}
    reg.attach(model, torch.zeros(1, 16))
    assert "0" not in grouped and reg.layer_names() == ["0", "3"]
