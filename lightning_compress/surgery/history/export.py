"""Export a (compressed) model as plain PyTorch: a ``torch.export`` program that runs without this package.

The folder written holds ``model.pt2`` (the program: architecture and weights; ``torch.export.load(path)
.module()`` gives a callable module), ``state_dict.pt`` (the weights with the compression history, for
:func:`~lightning_compress.surgery.load_compressed` into the original class) and ``export.json`` (input
shape and dtype, the normalization baked in or not, parameter count).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["Normalize", "export_model"]


class Normalize(nn.Module):
    """``model((x - mean) / std)``: the input normalization a data pipeline applied, made part of the model.

    Example:
        >>> Normalize(nn.Identity(), 0.5, 0.25)(torch.ones(1, 2))
        tensor([[2., 2.]])
    """

    def __init__(self, model: nn.Module, mean: float | torch.Tensor, std: float | torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> Any:
        return self.model((x - self.mean) / self.std)


def _plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def export_model(
    model: nn.Module,
    out_dir: str | Path,
    example_input: torch.Tensor,
    *,
    normalize: tuple[float | torch.Tensor, float | torch.Tensor] | None = None,
    dynamic_batch: bool = True,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``model`` to ``out_dir`` as ``model.pt2``, ``state_dict.pt`` and ``export.json``; returns the
    JSON's content.

    Args:
        model: The network (a LightningModule or a plain module); exported in eval mode on the CPU.
        out_dir: The folder to write (created).
        example_input: One input batch (its first dimension is the batch).
        normalize: ``(mean, std)`` to bake the input normalization into the program, so it takes raw
            inputs; without it, inputs must be normalized as in training (``export.json`` says which).
        dynamic_batch: Export with a symbolic batch size (falls back to the example's when the model
            cannot be exported so).
        metadata: More entries for ``export.json``.

    Example:
        >>> import tempfile
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> info = export_model(net, tempfile.mkdtemp(), torch.zeros(1, 4))
        >>> program = torch.export.load(info["program"]).module()
        >>> torch.allclose(program(torch.ones(5, 4)), net(torch.ones(5, 4)))
        True
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    target: nn.Module = model if normalize is None else Normalize(model, *normalize).eval()
    x = example_input.detach().cpu()
    batch2 = x[:1].repeat(2, *([1] * (x.dim() - 1)))  # a batch of 1 would be specialized to 1
    with torch.no_grad():
        try:
            if not dynamic_batch:
                raise RuntimeError("static batch asked for")
            dims = ({0: torch.export.Dim("batch")},)
            program = torch.export.export(target, (batch2,), dynamic_shapes=dims)
            dynamic = True
        except Exception as err:  # a model whose graph depends on the batch size
            if dynamic_batch:
                warnings.warn(
                    f"exported with a fixed batch size of {len(x)}: {err}".splitlines()[0], stacklevel=2
                )
            program = torch.export.export(target, (x,))
            dynamic = False
    path = folder / "model.pt2"
    torch.export.save(program, path)
    torch.save(_plain_state(model), folder / "state_dict.pt")
    info: dict[str, Any] = {
        "program": str(path),
        "state_dict": str(folder / "state_dict.pt"),
        "input_shape": [None if dynamic else len(x), *x.shape[1:]],
        "input_dtype": str(x.dtype).removeprefix("torch."),
        "normalization": "in the program: give raw inputs"
        if normalize is not None
        else "none: normalize inputs as in training",
        "params": sum(p.numel() for p in model.parameters()),
        **(metadata or {}),
    }
    (folder / "export.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    return info
