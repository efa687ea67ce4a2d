"""The IRvS energy model: an EnergyNetwork over y = (a, G) (action and normalised return), so
training (InfoNCE, DFO or Langevin counter-examples over the joint, gradient penalty, marginal
sampler) is IBC's; only inference differs: it minimises the exponential tilt (eq. 8)."""
from __future__ import annotations

from dataclasses import replace

import torch

from ibc_core.models.encoders import ObservationEncoder, ObservationSpec
from ibc_core.models.energy import EnergyNetwork
from ibc_core.samplers.dfo import dfo_optimize, select_lowest, uniform_actions
from ibc_core.samplers.langevin import langevin_chain
from ibc_core.samplers.noise import Noise
from ibc_core.config import EBMConfig, IRvSConfig, MLPConfig


class ReturnEnergyNetwork(EnergyNetwork):
    """energy(features, y): y [B, N, A+1] is (action, return) -> E(s, a, G); y [B, N, A] is an
    action alone -> the tilted energy min over G of E(s, a, G) - G / eta (what acting optimises,
    over a grid of irvs.return_grid returns), which Policy.energies / energy_grid show."""

    def __init__(self, spec: ObservationSpec, encoder: ObservationEncoder, mlp: MLPConfig, ebm: EBMConfig,
                 irvs: IRvSConfig):
        super().__init__(replace(spec, action_dim=spec.action_dim + 1), encoder, mlp, ebm)
        self.action_dim = spec.action_dim
        self.irvs = irvs

    def energy(self, features: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        if samples.shape[-1] == self.action_dim:
            return self.action_energy(features, samples)
        return super().energy(features, samples)

    def tilted_energy(self, features: torch.Tensor, joint: torch.Tensor) -> torch.Tensor:
        """E(s, a, G) - G / eta for joint samples [B, N, A+1] (eq. 8; kappa(eta) is a constant)."""
        return super().energy(features, joint) - self.irvs.inverse_eta * joint[..., -1]

    def action_energy(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        batch, count, dim = actions.shape
        grid = torch.linspace(-1.0, 1.0, self.irvs.return_grid, device=actions.device, dtype=actions.dtype)
        joint = torch.cat([actions[:, :, None, :].expand(batch, count, len(grid), dim),
                           grid.view(1, 1, -1, 1).expand(batch, count, len(grid), 1)], dim=-1)
        tilted = self.tilted_energy(features, joint.reshape(batch, count * len(grid), dim + 1))
        return tilted.view(batch, count, len(grid)).amin(dim=-1)

    def predict(self, features: torch.Tensor, noise: Noise) -> torch.Tensor:
        """argmin over (a, G) of the tilted energy by DFO or Langevin; returns the actions [B, A]."""
        return self.predict_joint(features, noise)[:, : self.action_dim]

    def predict_joint(self, features: torch.Tensor, noise: Noise) -> torch.Tensor:
        """The chosen (a, G) [B, A+1]; G is the normalised return the policy aims for."""
        batch, dim = len(features), self.action_dim + 1
        objective = lambda y: self.tilted_energy(features, y)  # noqa: E731
        if self.ebm.sampler == "dfo":
            best, _, _ = dfo_optimize(objective, batch, dim, self.ebm.dfo, noise, features.device)
            return best
        langevin = self.ebm.langevin
        samples = uniform_actions(noise, batch, langevin.inference_samples, dim).to(features.device)
        samples = langevin_chain(objective, samples, langevin, noise)
        if langevin.second_chain:
            samples = langevin_chain(objective, samples, langevin, noise, step_init=langevin.second_chain_step_init)
        with torch.no_grad():
            return select_lowest(samples, objective(samples))
