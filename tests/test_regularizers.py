"""The regularizer layer on its own: no Trainer, a plain module, the same math as the callback."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lightning_compress._checks import ArgumentError
from lightning_compress.callbacks import GroupSparsity
from lightning_compress.models import Classifier, LeNet300100
from lightning_compress.regularizers import GroupLasso, Regularizer
from lightning_compress.surgery import compress_zero_groups

X = torch.zeros(1, 1, 28, 28)


def test_group_lasso_is_a_regularizer() -> None:
    assert isinstance(GroupLasso(), Regularizer)


def test_unattached_regularizer_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="attach"):
        GroupLasso().prox_(0.1)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"strength": -1.0}, "strength"),
        ({"l1_ratio": 2.0}, "l1_ratio"),
        ({"groups": "rows"}, "groups"),
        ({"cost": "flops"}, "cost"),
        ({"keep_ratio": 1.0}, "keep_ratio"),
        ({"include": "model.1"}, "include"),
        ({"layer_strengths": {"1": -1.0}}, "layer_strengths['1']"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict, argument: str) -> None:
    with pytest.raises(ArgumentError) as info:
        GroupLasso(**kwargs)
    assert info.value.argument == argument
    assert argument.split("[")[0] in str(info.value)


@pytest.mark.parametrize("options", [{}, {"l1_ratio": 0.5}, {"keep_ratio": 0.25}, {"cost": "macs"}])
def test_plain_regularizer_equals_the_callbacks_prox(options: dict) -> None:
    torch.manual_seed(0)
    module = Classifier("lenet300_100", model_kwargs={"hidden": [32, 16]})
    twin = copy.deepcopy(module)
    gs = GroupSparsity(0.3, log_effective_size=False, **options)
    gs.prox(module, step=0.1)
    reg = GroupLasso(0.3, **options)
    reg.attach(twin, X)
    reg.prox_(0.1)
    for (name, a), b in zip(module.state_dict().items(), twin.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert sum(reg.zero_groups().values()) > 0


def test_refreshes_itself_after_a_shape_change() -> None:
    torch.manual_seed(0)
    model = LeNet300100(hidden=(16, 8))
    reg = GroupLasso(1.0)
    reg.attach(model, X)
    with torch.no_grad():
        model[1].weight[:5] = 0
        model[1].bias[:5] = 0
    compress_zero_groups(model, X)
    assert model[1].out_features == 11
    reg.prox_(10.0)  # strong enough to zero every group of the new, smaller layers
    assert reg.zero_groups() == {"1": 11, "3": 8}
    assert float(model[1].weight.detach().abs().sum()) == 0.0


def test_subgradient_matches_autograd_of_the_penalty() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    reg = GroupLasso(0.2, l1_ratio=0.3)
    reg.attach(model, torch.zeros(1, 4))
    model[0].weight.grad = torch.zeros_like(model[0].weight)
    model[0].bias.grad = torch.zeros_like(model[0].bias)
    reg.add_subgradient_(0.5)
    w = model[0].weight.detach().clone().requires_grad_(True)
    b = model[0].bias.detach().clone().requires_grad_(True)
    group = torch.cat([w, b[:, None]], 1)
    penalty = 0.2 * (0.7 * 5**0.5 * group.norm(dim=1).sum() + 0.3 * group.abs().sum())
    (0.5 * penalty).backward()
    assert torch.allclose(model[0].weight.grad, w.grad, atol=1e-6)
    assert torch.allclose(model[0].bias.grad, b.grad, atol=1e-6)
    assert float(reg.penalty()) == pytest.approx(float(penalty), rel=1e-6)


def test_widths_survive_state_dict() -> None:
    model = LeNet300100(hidden=(16, 8))
    reg = GroupLasso(1.0, keep_ratio=0.5)
    reg.attach(model, X)
    other = GroupLasso(1.0, keep_ratio=0.5)
    other.load_state_dict(reg.state_dict())
    assert other.widths == {"1": 16, "3": 8}
