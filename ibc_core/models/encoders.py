"""Observation encoders (appendix E.2): state histories are normalised and flattened; image
histories are stacked along channels and encoded once per observation by ConvMaxPool
(3x3 conv + 2x2 max-pool per stage, then global average pooling or spatial soft-argmax,
optional CoordConv input channels)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ibc_core.normalization import ObservationStats
from ibc_core.config import EncoderConfig


@dataclass(frozen=True)
class ObservationSpec:
    history_length: int
    action_dim: int
    state_dim: Optional[int] = None
    image_hw: Optional[tuple[int, int]] = None

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, present in (("state", self.state_dim), ("rgb", self.image_hw)) if present)


def add_coordinates(images: torch.Tensor) -> torch.Tensor:
    """CoordConv: append x and y pixel-coordinate maps in [-1, 1]."""
    b, _, h, w = images.shape
    ys = torch.linspace(-1.0, 1.0, h, device=images.device, dtype=images.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=images.device, dtype=images.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    coords = torch.stack([grid_x, grid_y]).expand(b, 2, h, w)
    return torch.cat([images, coords], dim=1)


class SpatialSoftArgmax(nn.Module):
    """Per-channel softmax over pixels -> expected (x, y): [B, C, H, W] -> [B, 2C]."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        b, c, h, w = features.shape
        weights = torch.softmax(features.flatten(2), dim=-1).view(b, c, h, w)
        ys = torch.linspace(-1.0, 1.0, h, device=features.device, dtype=features.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=features.device, dtype=features.dtype)
        expected_x = (weights.sum(2) * xs).sum(-1)
        expected_y = (weights.sum(3) * ys).sum(-1)
        return torch.cat([expected_x, expected_y], dim=-1)


class ConvMaxPool(nn.Module):
    def __init__(self, in_channels: int, cfg: EncoderConfig):
        super().__init__()
        self.coordconv = cfg.coordconv
        layers: list[nn.Module] = []
        previous = in_channels + (2 if cfg.coordconv else 0)
        for channels in cfg.channels:
            layers += [nn.Conv2d(previous, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            previous = channels
        self.convs = nn.Sequential(*layers)
        self.pool: nn.Module = SpatialSoftArgmax() if cfg.pooling == "spatial_softmax" else nn.Identity()
        self.output_dim = previous * (2 if cfg.pooling == "spatial_softmax" else 1)
        self.spatial = cfg.pooling == "spatial_softmax"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.coordconv:
            images = add_coordinates(images)
        features = self.convs(images)
        return self.pool(features) if self.spatial else features.mean(dim=(2, 3))


class ObservationEncoder(nn.Module):
    """obs {"state": [B, T, S] float, "rgb": [B, T, H, W, 3] uint8} -> features [B, F].
    Normalisation statistics are non-persistent buffers filled from the checkpoint's own
    normalisation section (one copy of them in a checkpoint)."""

    def __init__(self, spec: ObservationSpec, cfg: EncoderConfig):
        super().__init__()
        self.spec = spec
        self.output_dim = 0
        if spec.state_dim:
            self.register_buffer("state_mean", torch.zeros(spec.state_dim), persistent=False)
            self.register_buffer("state_std", torch.ones(spec.state_dim), persistent=False)
            self.output_dim += spec.history_length * spec.state_dim
        self.conv: Optional[ConvMaxPool] = None
        if spec.image_hw:
            self.register_buffer("rgb_mean", torch.zeros(3), persistent=False)
            self.register_buffer("rgb_std", torch.ones(3), persistent=False)
            self.conv = ConvMaxPool(3 * spec.history_length, cfg)
            self.output_dim += self.conv.output_dim

    def set_statistics(self, stats: dict[str, ObservationStats]) -> None:
        for key in self.spec.keys:
            getattr(self, f"{key}_mean").copy_(torch.as_tensor(stats[key].mean))
            getattr(self, f"{key}_std").copy_(torch.as_tensor(stats[key].std))

    def normalized_state(self, states: torch.Tensor) -> torch.Tensor:
        return ((states - self.state_mean) / self.state_std).flatten(1)

    def normalized_images(self, rgb: torch.Tensor) -> torch.Tensor:
        """[B, T, H, W, 3] uint8 -> [B, T*3, H, W] float, per-channel standardised."""
        images = (rgb.to(self.rgb_mean.dtype) / 255.0 - self.rgb_mean) / self.rgb_std
        b, t, h, w, c = images.shape
        return images.permute(0, 1, 4, 2, 3).reshape(b, t * c, h, w)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        if self.spec.state_dim:
            parts.append(self.normalized_state(obs["state"]))
        if self.conv is not None:
            parts.append(self.conv(self.normalized_images(obs["rgb"])))
        return torch.cat(parts, dim=-1)
