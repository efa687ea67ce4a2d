"""Autoregressive derivative-free optimisation (appendix B.2, Algorithm 2; never released by
the authors, built from the paper). One energy model E_j(x, y[:j+1]) per action dimension j.

Training and inference interleave exactly as in Algorithm 2: while training, each model's
InfoNCE loss uses the sampler's current particles as counter-examples. With one training
iteration (the default) those are uniform, so E_j learns the energy of the prefix y[:j+1].
sigma shrinks once per outer iteration (the flattened algorithm listing is ambiguous; shrinking
per dimension would leave 0.5^A of the scale after one pass)."""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ibc_core.losses import info_nce
from ibc_core.samplers.dfo import resample, select_lowest, uniform_actions
from ibc_core.samplers.noise import Noise
from ibc_core.config import DFOConfig

PrefixEnergyFn = Callable[[int, torch.Tensor], torch.Tensor]  # (j, actions[B, N, j+1]) -> [B, N]


def autoregressive_dfo(energy_fn: PrefixEnergyFn, batch: int, action_dim: int, cfg: DFOConfig,
                       noise: Noise, device: torch.device,
                       positives: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Returns (best actions [B, A], per-model InfoNCE losses when `positives` [B, A] is given)."""
    samples = uniform_actions(noise, batch, cfg.samples, action_dim).to(device)
    sigma = cfg.sigma_init
    losses: list[torch.Tensor] = []
    energies = torch.empty(0)
    for iteration in range(cfg.iterations):
        last_iteration = iteration == cfg.iterations - 1
        for dim in range(action_dim):
            if last_iteration and positives is None and dim < action_dim - 1:
                continue  # nothing is resampled in the last pass: only the full model's energies count
            prefix = samples[..., : dim + 1]
            if positives is None:
                energies = energy_fn(dim, prefix)
            else:
                candidates = torch.cat([positives[:, None, : dim + 1], prefix], dim=1)
                all_energies = energy_fn(dim, candidates)
                losses.append(info_nce(all_energies[:, 0], all_energies[:, 1:]))
                energies = all_energies[:, 1:].detach()
            if not last_iteration:
                # Only the prefix y[:j+1] is resampled: later dimensions keep their own
                # (still diverse) values for the models that come after.
                samples = torch.cat([resample(prefix, energies, noise), samples[..., dim + 1:]], dim=-1)
                jitter = noise.normal(batch, cfg.samples).to(device) * sigma
                samples[..., dim] = (samples[..., dim] + jitter).clamp(-1.0, 1.0)
        sigma *= cfg.shrink
    return select_lowest(samples, energies), losses
