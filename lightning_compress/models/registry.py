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

__all__ = ["MODELS", "build_model", "import_factory"]

MODELS: dict[str, Callable[..., nn.Module]] = {
    "lenet300_100": LeNet300100,
    "lenet5": LeNet5,
    "vgg_small": SmallVGG,
    "resnet_small": SmallResNet,
    "mobilenet_small": SmallMobileNet,
    "transformer_small": PatchTransformer,
}


def import_factory(path: str) -> Callable[..., nn.Module]:
    """The class or function at a dotted import path (``package.module.Name``), e.g. a user's own model or
    a library's (``timm.models.vision_transformer.VisionTransformer``).

    Example:
        >>> import_factory("torch.nn.Linear").__name__
        'Linear'
    """
    import importlib

    module, _, attr = path.rpartition(".")
    try:
        factory = getattr(importlib.import_module(module), attr) if module else None
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import model {path!r}: {err}") from None
    if not callable(factory):
        raise ValueError(f"cannot import model {path!r}: give package.module.ClassOrFunction")
    return factory


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate an example model by name, or any model by its dotted import path.

    Example:
        >>> type(build_model("lenet300_100", hidden=[600, 200])).__name__
        'LeNet300100'
        >>> build_model("torch.nn.Linear", in_features=4, out_features=2).weight.shape
        torch.Size([2, 4])
    """
    if name not in MODELS and "." not in name:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)} or give an import path")
    factory = MODELS[name] if name in MODELS else import_factory(name)
    try:
        model = factory(**kwargs)
    except TypeError as err:
        raise ValueError(f"bad arguments for model {name!r}: {err}") from err
    if not isinstance(model, nn.Module):
        raise ValueError(f"model {name!r} built a {type(model).__name__}, not a torch.nn.Module")
    return model
