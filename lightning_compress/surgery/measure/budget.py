"""The size a model would have after removing any set of its groups, computed without copying it.

Every family's coupled slices say which positions of which parameter dimension its groups own; a
parameter keeps ``numel`` times the kept share of each such dimension, and a layer's MACs scale with its
weight. What no family touches (the output layer's rows, parameter-free ops) is a constant. Exact for
the parameters of the layers the families reach; MACs of parameter-free ops (activations, pooling,
attention products) are held at their dense value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lightning_compress.surgery.groups import NeuronGroups
from lightning_compress.surgery.measure.size import layer_counts

__all__ = ["SizeModel"]


class SizeModel:
    """Parameters and MACs of ``model`` with any groups of ``families`` removed, from one trace.

    Args:
        model: The network (not changed).
        families: Its groups, as :func:`~lightning_compress.surgery.groups.find_groups` gives them.
        example_inputs: An input of one sample, for the MAC count.

    Example:
        >>> from lightning_compress.models import LeNet300100
        >>> from lightning_compress.surgery.groups import find_groups
        >>> model, x = LeNet300100(hidden=(6, 4)), torch.zeros(1, 1, 28, 28)
        >>> sizes = SizeModel(model, find_groups(model, x), x)
        >>> sizes.dense, sizes.offsets
        ({'params': 4788, 'macs': 4798}, [0, 6, 10])
        >>> removed = torch.zeros(10, dtype=torch.bool); removed[:3] = True   # 3 neurons of the first layer
        >>> sizes.size(removed)
        {'params': 2421, 'macs': 2431}
    """

    def __init__(self, model: nn.Module, families: Sequence[NeuronGroups], example_inputs: Any) -> None:
        params, macs, module_macs = layer_counts(model, example_inputs)
        self.dense = {"params": params, "macs": macs}
        self.offsets = [0]
        for family in families:
            self.offsets.append(self.offsets[-1] + family.num_groups)
        tensors: dict[int, int] = {}  # id(parameter) -> its index
        numel: list[float] = []
        owner_macs: list[float] = []
        entries: dict[tuple[int, int], int] = {}  # (parameter index, dim) -> entry
        dim_size: list[float] = []
        rows: list[torch.Tensor] = []
        cols: list[torch.Tensor] = []
        for f, family in enumerate(families):
            for s in family.slices:
                module = model.get_submodule(s.module)
                tensor = getattr(module, s.param)
                p = tensors.setdefault(id(tensor), len(tensors))
                if p == len(numel):
                    numel.append(float(tensor.numel()))
                    own = sum(t.numel() for t in module.parameters(recurse=False))
                    owner_macs.append(module_macs.get(module, 0) * tensor.numel() / max(own, 1))
                e = entries.setdefault((p, s.dim), len(entries))
                if e == len(dim_size):
                    dim_size.append(float(tensor.shape[s.dim]))
                roots = s.root if s.root is not None else torch.arange(tensor.shape[s.dim])
                rows.append(torch.full((len(roots),), e, dtype=torch.long))
                cols.append(roots.long() + self.offsets[f])
        self._numel = torch.tensor(numel, dtype=torch.float64)
        self._macs = torch.tensor(owner_macs, dtype=torch.float64)
        self._dim_size = torch.tensor(dim_size, dtype=torch.float64)
        self._entry_param = torch.tensor([p for p, _ in entries], dtype=torch.long)
        index = (
            torch.stack([torch.cat(rows), torch.cat(cols)]) if rows else torch.zeros(2, 0, dtype=torch.long)
        )
        values = torch.ones(index.shape[1], dtype=torch.float64)
        self._incidence = torch.sparse_coo_tensor(
            index, values, (len(entries), self.offsets[-1]), check_invariants=True
        ).coalesce()
        self._fixed = {"params": params - float(self._numel.sum()), "macs": macs - float(self._macs.sum())}

    @property
    def num_groups(self) -> int:
        """Groups of every family together (the length of a removal mask)."""
        return self.offsets[-1]

    def size(self, removed: torch.Tensor) -> dict[str, int]:
        """``{"params", "macs"}`` left after removing the groups ``removed`` marks (one flag per group,
        family after family, as :attr:`offsets` says)."""
        if self._dim_size.numel() == 0:
            return dict(self.dense)
        gone = torch.sparse.mm(self._incidence, removed.to(torch.float64).reshape(-1, 1)).flatten()
        kept = (1.0 - gone / self._dim_size).clamp_(min=0.0)
        share = torch.ones_like(self._numel).scatter_reduce_(0, self._entry_param, kept, reduce="prod")
        return {
            "params": round(self._fixed["params"] + float((self._numel * share).sum())),
            "macs": round(self._fixed["macs"] + float((self._macs * share).sum())),
        }
