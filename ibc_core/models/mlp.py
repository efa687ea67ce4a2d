"""Dense networks (appendix E.1): plain or dense-ResNet, optional spectral normalisation.

MLP takes several inputs whose first layers are summed, which is the same as one dense layer
on their concatenation; with broadcasting, obs features [B, 1, F] + actions [B, N, A] give late
fusion without materialising the tiled [B, N, F + A] tensor."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ibc_core.training.config import MLPConfig


def dense(in_dim: int, out_dim: int, use_spectral_norm: bool, bias: bool = True) -> nn.Module:
    layer = nn.Linear(in_dim, out_dim, bias=bias)
    return spectral_norm(layer) if use_spectral_norm else layer


def activation(name: str) -> nn.Module:
    return nn.ReLU() if name == "relu" else nn.SiLU()


class ResidualBlock(nn.Module):
    """Pre-activation block: x + W2 act(W1 act(x))."""

    def __init__(self, width: int, cfg: MLPConfig):
        super().__init__()
        self.body = nn.Sequential(activation(cfg.activation), dense(width, width, cfg.spectral_norm),
                                  activation(cfg.activation), nn.Dropout(cfg.dropout),
                                  dense(width, width, cfg.spectral_norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class MLP(nn.Module):
    """`depth` hidden layers of `width` units; dense ResNet groups the hidden layers after the
    first into residual pairs (an odd one left over stays a plain layer)."""

    def __init__(self, in_dims: Sequence[int], out_dim: int, cfg: MLPConfig, output_bias: bool = True):
        super().__init__()
        # Only the first input carries a bias: the summed layer is one affine map.
        self.inputs = nn.ModuleList(dense(d, cfg.width, cfg.spectral_norm, bias=i == 0)
                                    for i, d in enumerate(in_dims))
        hidden: list[nn.Module] = []
        remaining = cfg.depth - 1
        if cfg.resnet:
            hidden += [ResidualBlock(cfg.width, cfg) for _ in range(remaining // 2)]
            remaining %= 2
        for _ in range(remaining):
            hidden += [activation(cfg.activation), nn.Dropout(cfg.dropout),
                       dense(cfg.width, cfg.width, cfg.spectral_norm)]
        self.hidden = nn.Sequential(*hidden)
        self.head = nn.Sequential(activation(cfg.activation), nn.Dropout(cfg.dropout),
                                  dense(cfg.width, out_dim, cfg.spectral_norm, bias=output_bias))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if len(inputs) != len(self.inputs):
            raise ValueError(f"MLP expects {len(self.inputs)} inputs, got {len(inputs)}")
        h = sum(layer(x) for layer, x in zip(self.inputs, inputs))
        return self.head(self.hidden(h))
