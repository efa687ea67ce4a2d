"""Marginal action sampler (ebm_theory_vs_practice, section V).

InfoNCE bounds the observation-action mutual information only when its counter-examples are
independent draws of the marginal p(y). This module learns that marginal as a small EBM
p_gamma(y) ~ exp(-E_gamma(y)) over normalised actions, trained by the max-entropy loss
(appendix A) on its own short Langevin chains ("correct" update by default); the chains'
final samples are the conditional EBM's counter-examples (ebm.marginal.enabled)."""
from __future__ import annotations

import torch
from torch import nn

from ibc_core.losses import max_entropy_loss
from ibc_core.models.mlp import MLP
from ibc_core.samplers.dfo import uniform_actions
from ibc_core.samplers.langevin import langevin_chain
from ibc_core.samplers.noise import Noise
from ibc_core.config import MarginalSamplerConfig, MLPConfig


class MarginalActionEBM(nn.Module):
    def __init__(self, action_dim: int, cfg: MarginalSamplerConfig):
        super().__init__()
        self.action_dim = action_dim
        self.cfg = cfg
        self.mlp = MLP((action_dim,), 1, MLPConfig(width=cfg.width, depth=cfg.depth))

    def energy(self, actions: torch.Tensor) -> torch.Tensor:
        """Energies [B, N] of normalised actions [B, N, A]."""
        return self.mlp(actions).squeeze(-1)

    def sample(self, noise: Noise, batch: int, count: int) -> torch.Tensor:
        """`count` independent short chains per row from uniform starts: [B, count, A], detached."""
        device = next(self.parameters()).device
        initial = uniform_actions(noise, batch, count, self.action_dim).to(device)
        return langevin_chain(self.energy, initial, self.cfg.langevin, noise)

    def loss(self, positives: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        """Max-entropy loss of the marginal on data actions [B, A] and its own samples [B, N, A]."""
        return max_entropy_loss(self.energy(positives.unsqueeze(1)).squeeze(1), self.energy(samples),
                                self.cfg.entropy_weight, self.cfg.positive_l2)
