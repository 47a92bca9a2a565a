from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_compress.models import MODELS, Classifier, LeNet300100, build_model
from lightning_compress.surgery import count_params_and_macs


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_and_backward(name: str) -> None:
    model = build_model(name)
    out = model(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_counts_match_hand_computation() -> None:
    model = LeNet300100(hidden=(300, 100))
    params, macs = count_params_and_macs(model, torch.zeros(1, 1, 28, 28))
    assert params == 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    # Torch-Pruning counts a Linear as in*out MACs plus one per bias, and one op per ReLU output.
    assert macs == (784 * 300 + 300 * 100 + 100 * 10) + (300 + 100 + 10) + (300 + 100)
    wide = count_params_and_macs(LeNet300100(hidden=(600, 200)), torch.zeros(1, 1, 28, 28))[0]
    assert wide > params


def test_resnet_has_residual_adds_with_projection() -> None:
    model = build_model("resnet_small", widths=[8, 16], blocks=[2, 1])
    assert isinstance(model.layers[0].shortcut, nn.Identity)
    assert isinstance(model.layers[2].shortcut, nn.Sequential)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -0.1}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"momentum": 1.0}, "momentum"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"scheduler": "cyclic"}, "scheduler"),
        ({"gamma": 0.0}, "gamma"),
    ],
)
def test_classifier_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Classifier("lenet300_100", **kwargs)


def test_unknown_model_lists_choices() -> None:
    with pytest.raises(ValueError, match="lenet5"):
        Classifier("alexnet")
    with pytest.raises(ValueError, match="bad arguments for model 'lenet5'"):
        build_model("lenet5", widths=3)


def test_classifier_wraps_any_module() -> None:
    module = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), input_shape=(1, 28, 28))
    assert module.size() == {"params": 7850, "macs": 7850}
    assert "model" not in module.hparams
