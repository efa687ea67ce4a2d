"""Explicit baselines on the same encoders: MSE regression, mixture density network, and
nearest neighbour (appendix C.4; images through a fixed random projection to 128-D)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ibc_core.models.base import PolicyNetwork
from ibc_core.models.encoders import ObservationEncoder, ObservationSpec
from ibc_core.models.mlp import MLP
from ibc_core.samplers.noise import Noise
from ibc_core.config import MDNConfig, MLPConfig, NearestNeighbourConfig

_LOG_STD_RANGE = (-7.0, 2.0)


class MSENetwork(PolicyNetwork):
    def __init__(self, spec: ObservationSpec, encoder: ObservationEncoder, mlp: MLPConfig):
        super().__init__(spec, encoder)
        self.mlp = MLP((encoder.output_dim,), spec.action_dim, mlp)

    def loss(self, features: torch.Tensor, actions: torch.Tensor,
             noise: Noise) -> tuple[torch.Tensor, dict[str, float]]:
        loss = F.mse_loss(self.mlp(features), actions)
        return loss, {"mse": loss.item()}

    def predict(self, features: torch.Tensor, noise: Noise) -> torch.Tensor:
        return self.mlp(features).clamp(-1.0, 1.0)


class MDNNetwork(PolicyNetwork):
    """Gaussian mixture with diagonal covariances over normalised actions."""

    def __init__(self, spec: ObservationSpec, encoder: ObservationEncoder, mlp: MLPConfig, mdn: MDNConfig):
        super().__init__(spec, encoder)
        self.mdn = mdn
        self.mlp = MLP((encoder.output_dim,), mdn.components * (1 + 2 * spec.action_dim), mlp)

    def mixture(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        k, a = self.mdn.components, self.spec.action_dim
        out = self.mlp(features)
        logits = out[:, :k]
        means = out[:, k: k + k * a].view(-1, k, a)
        log_std = out[:, k + k * a:].view(-1, k, a).clamp(*_LOG_STD_RANGE)
        return logits, means, log_std

    def loss(self, features: torch.Tensor, actions: torch.Tensor,
             noise: Noise) -> tuple[torch.Tensor, dict[str, float]]:
        logits, means, log_std = self.mixture(features)
        z = (actions.unsqueeze(1) - means) / log_std.exp()
        component_log_prob = (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_weights = torch.log_softmax(logits / self.mdn.train_temperature, dim=-1)
        loss = -torch.logsumexp(log_weights + component_log_prob, dim=-1).mean()
        return loss, {"nll": loss.item()}

    def predict(self, features: torch.Tensor, noise: Noise) -> torch.Tensor:
        logits, means, log_std = self.mixture(features)
        rows = torch.arange(len(features), device=features.device)
        logits = logits / self.mdn.test_temperature
        if self.mdn.inference == "mode":
            return means[rows, logits.argmax(-1)].clamp(-1.0, 1.0)
        weights = torch.softmax(logits, -1)
        if self.mdn.inference == "mean":
            # The mixture's expectation: no jumps between modes from one step to the next, at
            # the price of averaging distinct modes (what MSE regression learns).
            return (weights.unsqueeze(-1) * means).sum(1).clamp(-1.0, 1.0)
        # Sample a component by inverse CDF, then a point from it with shrunken spread.
        cdf = weights.cumsum(-1)
        draws = noise.uniform(len(features), 1).to(cdf) * cdf[:, -1:]
        component = torch.searchsorted(cdf, draws).squeeze(-1).clamp(max=self.mdn.components - 1)
        std = log_std[rows, component].exp() ** self.mdn.test_variance_exponent
        sample = means[rows, component] + std * noise.normal(len(features), self.spec.action_dim).to(std.device)
        return sample.clamp(-1.0, 1.0)


class NearestNeighbourNetwork(PolicyNetwork):
    """Memorises (features, action) pairs; predicts the action of the L2-closest observation.
    Features: normalised state history, plus the image history through a fixed random linear
    projection regenerated from its seed (so checkpoints hold only the memory)."""

    def __init__(self, spec: ObservationSpec, encoder: ObservationEncoder, cfg: NearestNeighbourConfig,
                 memory_size: int):
        super().__init__(spec, encoder)
        feature_dim = 0
        if spec.state_dim:
            feature_dim += spec.history_length * spec.state_dim
        if spec.image_hw:
            h, w = spec.image_hw
            pixels = spec.history_length * 3 * h * w
            generator = torch.Generator().manual_seed(cfg.projection_seed)
            projection = torch.randn(pixels, cfg.projection_dim, generator=generator) / math.sqrt(cfg.projection_dim)
            self.register_buffer("projection", projection, persistent=False)
            feature_dim += cfg.projection_dim
        self.register_buffer("memory_features", torch.zeros(memory_size, feature_dim))
        self.register_buffer("memory_actions", torch.zeros(memory_size, spec.action_dim))

    def features(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        if self.spec.state_dim:
            parts.append(self.encoder.normalized_state(obs["state"]))
        if self.spec.image_hw:
            parts.append(self.encoder.normalized_images(obs["rgb"]).flatten(1) @ self.projection)
        return torch.cat(parts, dim=-1)

    def memorize(self, features: torch.Tensor, actions: torch.Tensor) -> None:
        if features.shape != self.memory_features.shape:
            raise ValueError(f"memory expects {tuple(self.memory_features.shape)}, got {tuple(features.shape)}")
        self.memory_features.copy_(features)
        self.memory_actions.copy_(actions)

    def loss(self, features: torch.Tensor, actions: torch.Tensor,
             noise: Noise) -> tuple[torch.Tensor, dict[str, float]]:
        raise TypeError("the nearest-neighbour baseline is fitted by memorize(), not trained")

    def predict(self, features: torch.Tensor, noise: Noise) -> torch.Tensor:
        nearest = torch.cdist(features, self.memory_features).argmin(dim=-1)
        return self.memory_actions[nearest]
