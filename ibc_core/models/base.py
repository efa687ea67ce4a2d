"""The interface every policy network (implicit or explicit) offers the trainer and Policy."""
from __future__ import annotations

import torch
from torch import nn

from ibc_core.models.encoders import ObservationEncoder, ObservationSpec
from ibc_core.samplers.noise import Noise


class PolicyNetwork(nn.Module):
    """features(obs) -> [B, F]; loss(features, actions in [-1, 1], noise) -> (loss, metrics);
    predict(features, noise) -> actions [B, A] in [-1, 1]."""

    def __init__(self, spec: ObservationSpec, encoder: ObservationEncoder):
        super().__init__()
        self.spec = spec
        self.encoder = encoder

    @property
    def predict_needs_gradients(self) -> bool:
        """True when predict() differentiates the energy (Langevin): no inference_mode then."""
        return False

    def features(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encoder(obs)

    def loss(self, features: torch.Tensor, actions: torch.Tensor,
             noise: Noise) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def predict(self, features: torch.Tensor, noise: Noise) -> torch.Tensor:
        raise NotImplementedError

    def energy(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Energies [B, N] of actions [B, N, A]; only energy-based networks have one."""
        raise TypeError(f"{type(self).__name__} is not an energy-based model")
