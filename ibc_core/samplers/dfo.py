"""Derivative-free optimisation over actions in the normalised box [-1, 1]^A (appendix Alg. 1)."""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ibc_core.samplers.noise import Noise
from ibc_core.config import DFOConfig

EnergyFn = Callable[[torch.Tensor], torch.Tensor]   # actions [B, N, A] -> energies [B, N]


def uniform_actions(noise: Noise, batch: int, count: int, action_dim: int) -> torch.Tensor:
    return noise.uniform(batch, count, action_dim) * 2.0 - 1.0


def resample(samples: torch.Tensor, energies: torch.Tensor, noise: Noise) -> torch.Tensor:
    """Multinomial resampling with replacement, p ~ softmax(-E), by inverse CDF (vectorised)."""
    probs = torch.softmax(-energies, dim=-1)
    cdf = torch.cumsum(probs, dim=-1)
    draws = noise.uniform(*energies.shape).to(cdf) * cdf[..., -1:]
    index = torch.searchsorted(cdf, draws).clamp_(max=energies.shape[-1] - 1)
    return torch.gather(samples, 1, index.unsqueeze(-1).expand_as(samples))


def select_lowest(samples: torch.Tensor, energies: torch.Tensor) -> torch.Tensor:
    """argmax of softmax(-E): the lowest-energy sample per batch row -> [B, A]."""
    best = energies.argmin(dim=-1)
    return samples[torch.arange(len(samples), device=samples.device), best]


def dfo_optimize(energy_fn: EnergyFn, batch: int, action_dim: int, cfg: DFOConfig,
                 noise: Noise, device: torch.device, rescore_fn: Optional[EnergyFn] = None,
                 rescore_top: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns (best actions [B, A], final samples [B, N, A], their energies [B, N]).

    The final energies are computed on the final samples (the reference implementation pairs
    the last resampled set with the previous iteration's probabilities). With rescore_fn (e.g.
    the float32 model when energy_fn runs in bfloat16), the rescore_top lowest final samples
    are re-scored by it and the best of those is returned: low-precision search, exact choice."""
    samples = uniform_actions(noise, batch, cfg.samples, action_dim).to(device)
    sigma = cfg.sigma_init
    energies = energy_fn(samples)
    for _ in range(cfg.iterations - 1):
        samples = resample(samples, energies, noise)
        samples = (samples + noise.normal(*samples.shape).to(device) * sigma).clamp_(-1.0, 1.0)
        sigma *= cfg.shrink
        energies = energy_fn(samples)
    if rescore_fn is None:
        return select_lowest(samples, energies), samples, energies
    return select_lowest_rescored(samples, energies, rescore_fn, rescore_top), samples, energies


def select_lowest_rescored(samples: torch.Tensor, energies: torch.Tensor, rescore_fn: EnergyFn,
                           top: int) -> torch.Tensor:
    """The lowest rescore_fn energy among the `top` lowest-energy samples per batch row."""
    candidates_index = energies.topk(min(top, energies.shape[-1]), dim=-1, largest=False).indices
    candidates = torch.gather(samples, 1, candidates_index.unsqueeze(-1).expand(-1, -1, samples.shape[-1]))
    return select_lowest(candidates, rescore_fn(candidates))
