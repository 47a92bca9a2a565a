from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from lightning_compress.models import LeNet5, LeNet300100, SmallResNet, SmallVGG
from lightning_compress.surgery import (
    apply_history,
    compress_zero_groups,
    enable_history_restore,
    find_groups,
    get_history,
    remove_groups,
)

X = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def _zero_incoming(model: nn.Module, family, idxs: list[int]) -> None:
    """Zero the incoming group (weights, bias, norm entries) of neurons ``idxs`` of a family."""
    with torch.no_grad():
        for s in family.slices:
            if s.incoming:
                t = getattr(model.get_submodule(s.module), s.param)
                t.index_fill_(s.dim, torch.tensor(idxs), 0.0)


@pytest.mark.parametrize(
    "make", [lambda: LeNet300100(), LeNet5, SmallVGG, SmallResNet], ids=["mlp", "lenet5", "vgg", "resnet"]
)
def test_removing_zero_groups_keeps_outputs(make) -> None:
    torch.manual_seed(0)
    model = make().eval()
    families = find_groups(model, X[:1])
    for f in families:
        _zero_incoming(model, f, [0, 2])
    before = model(X)
    n_before = sum(p.numel() for p in model.parameters())
    records = compress_zero_groups(model, X[:1])
    assert len(records) == len(families)
    assert sum(p.numel() for p in model.parameters()) < n_before
    assert torch.allclose(model(X), before, atol=1e-5)


def test_constant_output_is_folded_into_next_bias() -> None:
    """A ReLU neuron with zero weights but a positive bias emits relu(b): removal must keep outputs."""
    torch.manual_seed(0)
    model = LeNet300100(hidden=(16, 8)).eval()
    with torch.no_grad():
        model[1].weight[3] = 0
        model[1].bias[3] = 0.7
    before = model(X)
    families = find_groups(model, X[:1])
    remove_groups(model, families, {"1": [3]}, X[:1])
    assert model[1].out_features == 15
    assert torch.allclose(model(X), before, atol=1e-6)


def test_residual_channels_form_one_group() -> None:
    model = SmallResNet(widths=(8, 16), blocks=(2, 1))
    families = find_groups(model, X[:1])
    tied = [f for f in families if len(f.layers) > 1]
    assert any({"stem.0", "layers.0.conv2", "layers.1.conv2"} <= set(f.layers) for f in tied)
    names = [n for f in families for n in f.layers]
    assert "fc" not in names  # the output layer is never a group


def test_include_exclude_and_bad_patterns() -> None:
    model = LeNet5()
    assert [f.name for f in find_groups(model, X[:1], include=["features.*"])] == ["features.0", "features.3"]
    assert [f.name for f in find_groups(model, X[:1], exclude=[nn.Conv2d])] == ["classifier.1"]
    with pytest.raises(ValueError, match=r"exclude entry 'fc9' matches no layer; layers are: features.0"):
        find_groups(model, X[:1], exclude=["fc9"])


def test_untraceable_model_is_named() -> None:
    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.a(x) + y

    with pytest.raises(ValueError, match="Torch-Pruning could not trace TwoInputs"):
        find_groups(TwoInputs(), torch.zeros(1, 3))


def test_optimizer_state_is_sliced_and_rebound() -> None:
    torch.manual_seed(0)
    model = LeNet300100(hidden=(6, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(X).sum().backward()
    opt.step()
    avg = opt.state[model[1].weight]["exp_avg"].clone()
    remove_groups(model, find_groups(model, X[:1]), {"1": [1, 4]}, X[:1], optimizers=[opt])
    params = list(model.parameters())
    assert [p for g in opt.param_groups for p in g["params"]] == params
    keep = torch.tensor([0, 2, 3, 5])
    assert torch.equal(opt.state[model[1].weight]["exp_avg"], avg[keep])
    assert opt.state[model[3].weight]["exp_avg"].shape == (4, 4)  # next layer's columns sliced
    opt.zero_grad()
    model(X).sum().backward()
    opt.step()  # state shapes fit the new parameters


def test_history_replays_on_fresh_model_and_weights_only_load() -> None:
    torch.manual_seed(0)
    model = SmallResNet(widths=(8, 16), blocks=(1, 1)).eval()
    families = find_groups(model, X[:1])
    remove_groups(model, families, {families[0].name: [1, 3], families[-1].name: [0]}, X[:1])
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = SmallResNet(widths=(8, 16), blocks=(1, 1)).eval()
    enable_history_restore(fresh, X[:1])
    fresh.load_state_dict(state)
    assert get_history(fresh) == get_history(model) and len(get_history(model)) == 2
    assert torch.equal(fresh(X), model(X))


def test_history_must_be_a_prefix() -> None:
    model = LeNet300100(hidden=(6, 4))
    remove_groups(model, find_groups(model, X[:1]), {"1": [0]}, X[:1])
    with pytest.raises(ValueError, match="prefix"):
        apply_history(model, [{"kind": "prune", "module": "1", "idxs": [2]}], X[:1])
    with pytest.raises(ValueError, match="unknown compression record kind 'nope'"):
        apply_history(model, [*get_history(model), {"kind": "nope"}], X[:1])


def test_input_feature_removal_is_lossless_and_replays() -> None:
    from lightning_compress.surgery import InputSelectLinear, compress_zero_groups, count_params_and_macs

    torch.manual_seed(0)
    model = LeNet300100(hidden=(12, 6)).eval()
    opt = torch.optim.Adam(model.parameters())
    model(X).sum().backward()
    opt.step()
    with torch.no_grad():
        model[1].weight[:, 100:300] = 0  # 200 dead pixels
        model[1].weight[4] = 0
        model[1].bias[4] = 0  # and one dead neuron
    before = model(X)
    records = compress_zero_groups(model, X[:1], input_layers=["1"], optimizers=[opt])
    assert [r["kind"] for r in records] == ["prune", "select_inputs"]
    assert (
        isinstance(model[1], InputSelectLinear)
        and model[1].in_features == 584
        and model[1].out_features == 11
    )
    assert torch.allclose(model(X), before, atol=1e-6)
    assert opt.state[model[1].weight]["exp_avg"].shape == (11, 584)
    params, macs = count_params_and_macs(model, X[:1])
    assert params == sum(p.numel() for p in model.parameters())
    assert macs == 584 * 11 + 11 + 11 + (11 * 6 + 6) + 6 + (
        6 * 10 + 10
    )  # linear + bias, ReLUs, as for nn.Linear
    fresh = LeNet300100(hidden=(12, 6)).eval()
    enable_history_restore(fresh, X[:1])
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh(X), model(X))
    exported = torch.export.export(model, (X,))
    assert torch.allclose(exported.module()(X), model(X))


def test_input_groups_need_a_linear() -> None:
    from lightning_compress.surgery import input_groups

    with pytest.raises(ValueError, match="Linear layers only"):
        input_groups(LeNet5(), "features.0")
    with pytest.raises(ValueError, match="not a layer"):
        input_groups(LeNet5(), "nope")


class _MixedAdd(nn.Module):
    """A residual add fed by a conv with BatchNorm and a conv without: no BatchNorm-only group."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.bn, self.b = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.a(x)) + self.b(x))
        return self.fc(y.mean((2, 3)))


def test_bn_groups_hold_only_norm_entries_where_every_producer_is_normalized() -> None:
    resnet = SmallResNet()
    groups = {f.name: f for f in find_groups(resnet, X[:1])}
    inner = groups["layers.0.conv1"].selected(resnet, "bn")
    assert [(s.module, s.param) for s in inner] == [("layers.0.bn1", "weight"), ("layers.0.bn1", "bias")]
    tied = {s.module for s in groups["stem.0"].selected(resnet, "bn")}
    assert tied == {"stem.1", "layers.0.bn2"}  # the residual channel: both BatchNorms, no conv filter
    lenet = LeNet5()  # no BatchNorm: the incoming groups
    for f in find_groups(lenet, X[:1]):
        assert f.selected(lenet, "bn") == f.selected(lenet, "incoming")
    mixed = _MixedAdd()
    (family,) = find_groups(mixed, X[:1])
    assert family.selected(mixed, "bn") == family.selected(mixed, "incoming")


def test_zero_bn_groups_are_removed_without_changing_outputs() -> None:
    """A channel with zero BatchNorm scale and shift outputs zero whatever its filter: removal is exact."""
    torch.manual_seed(0)
    model = SmallResNet().eval()
    families = find_groups(model, X[:1])
    with torch.no_grad():
        for f in families:
            for s in f.selected(model, "bn"):
                getattr(model.get_submodule(s.module), s.param)[[0, 3]] = 0.0
    before = model(X)
    assert compress_zero_groups(model, X[:1]) == []  # the filters are not zero: incoming norms see no zero
    records = compress_zero_groups(model, X[:1], mode="bn")
    assert {r["module"] for r in records} == {f.name for f in families}
    assert model.layers[0].conv1.out_channels == 14
    assert torch.allclose(model(X), before, atol=1e-5)


def test_tracing_and_pruning_keep_every_module_mode() -> None:
    """Torch-Pruning traces in eval mode: BatchNorm must train with batch statistics after a mid-fit trace."""
    model = SmallResNet()
    model.train()
    model.fc.eval()  # a mixed state is kept as it is, module by module
    families = find_groups(model, X[:1])
    assert [m.training for m in model.modules()] == [m is not model.fc for m in model.modules()]
    for f in families:
        _zero_incoming(model, f, [1])
    compress_zero_groups(model, X[:1])
    assert [m.training for m in model.modules()] == [m is not model.fc for m in model.modules()]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_layer_replaced_by_two_keeps_training(optimizer: str) -> None:
    """A Linear split into two thin Linears: both join the old param group and update after the change."""
    from lightning_compress.surgery import fresh_state, rebind_optimizer

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    groups = [
        {"params": list(model[0].parameters()), "lr": 0.05},
        {"params": list(model[2].parameters()), "lr": 0.01},
    ]
    opt = (
        torch.optim.SGD(groups, momentum=0.9)
        if optimizer == "sgd"
        else torch.optim.Adam(groups, betas=(0.9, 0.99))
    )
    x, y = torch.randn(16, 6), torch.randn(16, 3)
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    old = model[2]
    u, s, vh = torch.linalg.svd(old.weight.detach(), full_matrices=False)
    first, second = nn.Linear(5, 2, bias=False), nn.Linear(2, 3)
    with torch.no_grad():
        first.weight.copy_(s[:2, None] * vh[:2])
        second.weight.copy_(u[:, :2])
        second.bias.copy_(old.bias)
    model[2] = nn.Sequential(first, second)
    rebind_optimizer(opt, {old.weight: [(first.weight, fresh_state), (second.weight, fresh_state)]})
    rebind_optimizer(opt, {old.bias: [(second.bias, lambda k, v, o, n: v)]})
    assert opt.param_groups[1]["params"] == [first.weight, second.weight, second.bias]
    assert opt.param_groups[1]["lr"] == 0.01
    assert old.weight not in opt.state and old.bias not in opt.state
    if optimizer == "adam":
        assert opt.state[second.bias]["exp_avg"].shape == (3,)  # carried
    before = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
    for name, (p, b) in zip(
        [n for n, _ in model.named_parameters()], zip(model.parameters(), before, strict=True), strict=True
    ):
        assert not torch.equal(p, b), f"{name} did not update"
