"""Build the example models by name (used by configs and the CLI)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from lightning_compress.models.lenet import LeNet5, LeNet300100
from lightning_compress.models.mobilenet import SmallMobileNet
from lightning_compress.models.resnet import SmallResNet
from lightning_compress.models.transformer import PatchTransformer
from lightning_compress.models.vgg import SmallVGG

__all__ = ["MODELS", "build_model"]

MODELS: dict[str, Callable[..., nn.Module]] = {
    "lenet300_100": LeNet300100,
    "lenet5": LeNet5,
    "vgg_small": SmallVGG,
    "resnet_small": SmallResNet,
    "mobilenet_small": SmallMobileNet,
    "transformer_small": PatchTransformer,
}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate an example model by name.

    Example:
        >>> type(build_model("lenet300_100", hidden=[600, 200])).__name__
        'LeNet300100'
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    try:
        return MODELS[name](**kwargs)
    except TypeError as err:
        raise ValueError(f"bad arguments for model {name!r}: {err}") from err
