"""Tracing a model with Torch-Pruning's dependency graph, leaving every module's train/eval mode as it was."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from lightning_compress.surgery.base.conv1d import CONV1D_PRUNER, conv1d_types
from lightning_compress.surgery.base.rms import RMS_NORM_PRUNER, rms_norm_types

__all__ = ["build_dependency_graph", "kept_modes", "traced_outputs", "without_cache"]


@contextmanager
def kept_modes(model: nn.Module) -> Iterator[None]:
    """Restore the train/eval mode of every module of ``model`` on exit (``model.train(m)`` would set them all).

    Example:
        >>> model = nn.Sequential(nn.Linear(2, 2), nn.Dropout()); _ = model[1].eval()
        >>> with kept_modes(model):
        ...     _ = model.train()
        >>> model[0].training, model[1].training
        (True, False)
    """
    modes = [(module, module.training) for module in model.modules()]
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


@contextmanager
def without_cache(model: nn.Module) -> Iterator[None]:
    """A Hugging Face model's ``config.use_cache`` off inside: a key/value cache is no tensor to trace,
    and one kept across calls would grow with each.

    Example:
        >>> model = nn.Linear(2, 2); model.config = type("Config", (), {"use_cache": True})()
        >>> with without_cache(model):
        ...     model.config.use_cache
        False
        >>> model.config.use_cache
        True
    """
    config = getattr(model, "config", None)
    cache = getattr(config, "use_cache", None)
    if cache:
        config.use_cache = False  # type: ignore[union-attr]
    try:
        yield
    finally:
        if cache:
            config.use_cache = cache  # type: ignore[union-attr]


def traced_outputs(output: Any) -> list[torch.Tensor]:
    """The tensors of a model's output that the graph is traced back from: found in tuples, lists and
    dicts (a Hugging Face ``ModelOutput`` is one); anything else (a key/value cache object) is skipped.

    Example:
        >>> x = torch.ones(2, requires_grad=True) * 2
        >>> [t.shape for t in traced_outputs({"logits": x, "cache": object(), "extra": (x, None)})]
        [torch.Size([2]), torch.Size([2])]
    """
    if isinstance(output, torch.Tensor):
        return [output] if output.grad_fn is not None else []
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in traced_outputs(item)]
    return []


def build_dependency_graph(model: nn.Module, example_inputs: Any) -> tp.DependencyGraph:
    """Trace ``model`` with Torch-Pruning; a model it cannot trace gives a ``ValueError`` saying so.

    Torch-Pruning traces in eval mode; every module's train/eval mode is restored afterwards, so a
    trace in the middle of fit (groups, pruning) does not leave BatchNorm and dropout in eval mode.

    Example:
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> graph = build_dependency_graph(model, torch.zeros(1, 3))
        >>> len(list(graph.get_all_groups(root_module_types=(nn.Linear,))))
        2
    """
    try:
        with torch.enable_grad(), kept_modes(model), without_cache(model):
            return tp.DependencyGraph().build_dependency(
                model,
                example_inputs=example_inputs,
                output_transform=traced_outputs,
                customized_pruners={
                    **{kind: CONV1D_PRUNER for kind in conv1d_types(model)},
                    **{kind: RMS_NORM_PRUNER for kind in rms_norm_types(model)},
                },
                verbose=False,
            )
    except Exception as err:  # tracing runs arbitrary user forward code
        raise ValueError(
            f"Torch-Pruning could not trace {type(model).__name__} with the example input: "
            f"{type(err).__name__}: {err}"
        ) from err
