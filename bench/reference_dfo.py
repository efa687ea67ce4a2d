"""The straightforward DFO inference the benchmarks measure the optimised Policy against.

It is written the way the IBC reference code (and appendix Alg. 1) reads: encode the
observation once, then on every iteration tile the observation features to every sample,
concatenate them with the actions and run the float32 MLP on the [B * N, F + A] rows, with the
network's own layers (spectral norm recomputed on every call). Its random numbers come from the
same generator in the same order as ibc_core's DFO, so with float32 inference the two must agree
(tests/test_bench_inference.py) and any difference in time is implementation, not algorithm.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ibc_core.models.energy import EnergyNetwork
from ibc_core.policy import Policy


def reference_energies(network: EnergyNetwork, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """features [B, F], actions [B, N, A] -> energies [B, N] through tile + concatenate."""
    batch, count, _ = actions.shape
    tiled = features.unsqueeze(1).expand(batch, count, features.shape[-1])
    rows = torch.cat([tiled, actions], dim=-1).reshape(batch * count, -1)
    observation_layer, action_layer = network.mlp.inputs
    weight = torch.cat([observation_layer.weight, action_layer.weight], dim=1)
    hidden = F.linear(rows, weight, observation_layer.bias)
    return network.mlp.head(network.mlp.hidden(hidden)).view(batch, count)


def reference_dfo(network: EnergyNetwork, features: torch.Tensor, generator: torch.Generator) -> tuple[
        torch.Tensor, torch.Tensor, torch.Tensor]:
    """Alg. 1: (best [B, A], final samples [B, N, A], their energies [B, N]) in [-1, 1]."""
    cfg, batch, dim = network.ebm.dfo, len(features), network.spec.action_dim
    device = features.device
    samples = torch.rand((batch, cfg.samples, dim), generator=generator, device=device) * 2.0 - 1.0
    energies = reference_energies(network, features, samples)
    sigma = cfg.sigma_init
    for _ in range(cfg.iterations - 1):
        probs = torch.softmax(-energies, dim=-1)
        cdf = torch.cumsum(probs, dim=-1)
        draws = torch.rand((batch, cfg.samples), generator=generator, device=device) * cdf[:, -1:]
        index = torch.searchsorted(cdf, draws).clamp(max=cfg.samples - 1)
        samples = torch.stack([samples[row, index[row]] for row in range(batch)])
        samples = samples + torch.randn(samples.shape, generator=generator, device=device) * sigma
        samples = samples.clamp(-1.0, 1.0)
        sigma *= cfg.shrink
        energies = reference_energies(network, features, samples)
    best = energies.argmin(dim=-1)
    return samples[torch.arange(batch), best], samples, energies


class ReferencePolicy:
    """act() as Policy.act, with the reference DFO: same preprocessing, history, weights and
    seed (it reuses the Policy's observation handling, which both sides share)."""

    def __init__(self, policy: Policy):
        if not isinstance(policy.network, EnergyNetwork) or policy.network.ebm.sampler != "dfo":
            raise ValueError("the reference implements DFO inference of an EnergyNetwork only")
        self.policy = policy
        self.generator = torch.Generator(device=policy.device)
        self.reset()

    def reset(self) -> None:
        self.policy.reset()
        self.generator.manual_seed(self.policy.artifacts.config.run.seed)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        policy = self.policy
        policy._history.append(policy._prepare(obs))
        history = policy._padded(list(policy._history))
        with torch.no_grad():
            features = policy.network.features(policy._batch([history]))
            best, _, _ = reference_dfo(policy.network, features, self.generator)
            action = policy.artifacts.bounds.denormalize(best)[0]
        return action.cpu().numpy().astype(np.float32)
