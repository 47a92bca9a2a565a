"""Streaming layer-input statistics: equal to the stored activations, for Linear and any Conv2d geometry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_compress.surgery import capture_inputs, input_statistics, layer_input_rows


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(3, 5, 3),
        nn.Conv2d(3, 5, 3, stride=2, padding=1),
        nn.Conv2d(3, 5, (3, 2), stride=(2, 1), padding=(2, 1), dilation=2),
        nn.Conv2d(3, 5, 3, padding=1, padding_mode="reflect"),
    ],
    ids=["plain", "stride-pad", "dilated-rect", "reflect"],
)
def test_conv_rows_reproduce_the_convolution(conv: nn.Conv2d) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 8)
    rows = layer_input_rows(conv, x)
    out = conv(x)
    manual = rows @ conv.weight.flatten(1).T + conv.bias
    assert torch.allclose(manual, out.permute(0, 2, 3, 1).reshape(-1, 5), atol=1e-5)


def test_grouped_conv_is_refused_with_a_clear_line() -> None:
    with pytest.raises(ValueError, match="groups=1"):
        layer_input_rows(nn.Conv2d(4, 4, 3, groups=2), torch.zeros(1, 4, 5, 5))


def test_streamed_statistics_equal_the_stored_inputs() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 13 * 13, 7))
    data = [(torch.randn(8, 1, 28, 28), torch.zeros(8)) for _ in range(3)]
    stats = input_statistics(model, ["0", "3"], data)
    everything = torch.cat([x for x, _ in data])
    seen = capture_inputs(model, ["0", "3"], everything)
    for name in ("0", "3"):
        rows = layer_input_rows(model.get_submodule(name), seen[name]).double()
        assert stats[name].count == rows.shape[0]
        assert torch.allclose(stats[name].xxt, rows.T @ rows, rtol=1e-9, atol=1e-6)
        assert torch.allclose(stats[name].mean, rows.mean(0), atol=1e-9)
    assert model.training, "the model's mode is restored"
    assert input_statistics(model, ["3"], data, max_batches=1)["3"].count == 8


def test_a_transformer_blocks_linear_projections() -> None:
    torch.manual_seed(0)
    block = nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, batch_first=True)
    data = [torch.randn(3, 5, 8) for _ in range(2)]
    stats = input_statistics(block, ["linear1", "linear2"], data)
    assert stats["linear1"].count == 2 * 3 * 5 and stats["linear1"].xxt.shape == (8, 8)
    assert stats["linear2"].xxt.shape == (16, 16)
    assert bool((torch.linalg.eigvalsh(stats["linear2"].xxt) > -1e-9).all())  # a Gram matrix
