"""A small vision transformer for 28x28 images: non-overlapping patches as tokens, pre-norm encoder blocks."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PatchTransformer"]


class PatchTransformer(nn.Module):
    """Patch embedding, learned positions, ``nn.TransformerEncoderLayer`` blocks, mean pooling, a classifier.

    Its attention heads, MLP hidden units and residual width (one family across every block) are groups
    (see :mod:`lightning_compress.surgery.groups.layer_kinds`).

    Args:
        dim: Width of the residual stream.
        depth: Number of encoder blocks.
        heads: Attention heads per block.
        mlp: Hidden units of each block's MLP.
        patch: Side of a square patch (28 must be a multiple of it).
        num_classes: Output classes.
        in_channels: Input channels.

    Example:
        >>> model = PatchTransformer()
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        dim: int = 32,
        depth: int = 3,
        heads: int = 4,
        mlp: int = 128,
        patch: int = 7,
        num_classes: int = 10,
        in_channels: int = 1,
        image: int = 28,
    ) -> None:
        super().__init__()
        if image % patch:
            raise ValueError(f"the image side {image} is not a multiple of the patch side {patch}")
        self.patch, self.side = patch, image // patch
        self.embed = nn.Linear(in_channels * patch * patch, dim)
        self.pos = nn.Parameter(torch.randn(1, self.side * self.side, dim) * 0.02)
        self.blocks = nn.Sequential(
            *(
                nn.TransformerEncoderLayer(
                    dim, heads, mlp, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
                )
                for _ in range(depth)
            )
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[0], x.shape[1]
        p, s = self.patch, self.side
        tokens = x.reshape(n, c, s, p, s, p).permute(0, 2, 4, 1, 3, 5).reshape(n, s * s, c * p * p)
        h = self.blocks(self.embed(tokens) + self.pos)
        return self.head(self.norm(h).mean(1))
