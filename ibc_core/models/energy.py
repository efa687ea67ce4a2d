"""Implicit (energy-based) policies: E(x, y) -> R, lower is better, p(y|x) ~ exp(-E)."""
from __future__ import annotations

from dataclasses import replace

import torch
from torch.nn.utils import parametrize

from ibc_core.losses import energy_gradient_norm, energy_variance, gradient_penalty, info_nce
from ibc_core.models.base import PolicyNetwork
from ibc_core.models.encoders import ObservationEncoder, ObservationSpec
from ibc_core.models.mlp import MLP
from ibc_core.samplers.autoregressive import autoregressive_dfo
from ibc_core.samplers.dfo import EnergyFn, dfo_optimize, select_lowest, uniform_actions
from ibc_core.samplers.langevin import langevin_chain
from ibc_core.models.marginal import MarginalActionEBM
from ibc_core.samplers.noise import Noise
from ibc_core.config import DFOConfig, EBMConfig, MLPConfig


class EnergyNetwork(PolicyNetwork):
    """One energy model over the full action; counter-examples and inference by DFO or Langevin."""

    def __init__(self, spec: ObservationSpec, encoder: ObservationEncoder, mlp: MLPConfig, ebm: EBMConfig):
        super().__init__(spec, encoder)
        self.ebm = ebm
        # No output bias: InfoNCE is a softmax over energies, blind to a constant offset, so that
        # bias would get no gradient and only drift.
        self.mlp = MLP((encoder.output_dim, spec.action_dim), 1, mlp, output_bias=False)
        # Counter-examples from a learned marginal p(y) instead of the sampler (ebm.marginal).
        self.marginal = MarginalActionEBM(spec.action_dim, ebm.marginal) if ebm.marginal.enabled else None
        # DFO inference precision (Policy sets it): float32, or a bfloat16 / int8 (torch.qint8)
        # search + float32 choice.
        self.inference_dtype = torch.float32
        self._frozen: dict[tuple[torch.dtype, torch.device], MLP] = {}

    @property
    def predict_needs_gradients(self) -> bool:
        return self.ebm.sampler == "langevin"

    def train(self, mode: bool = True) -> "EnergyNetwork":
        # Weights may change from here on: frozen inference copies are rebuilt when next needed.
        self._frozen.clear()
        return super().train(mode)

    def _bound_energy(self, features: torch.Tensor, dtype: torch.dtype) -> EnergyFn:
        """actions [B, N, A] -> float32 energies [B, N] for fixed features. In eval mode this
        runs a frozen copy of the MLP in `dtype` with the features' first layer precomputed."""
        if self.training:
            return lambda actions: self.energy(features, actions)
        key = (dtype, features.device)
        if key not in self._frozen:
            self._frozen[key] = self.mlp.frozen(dtype).to(features.device)
        # int8 copies take and return float32 (only their weights and products are int8).
        compute = torch.float32 if dtype == torch.qint8 else dtype
        bound = self._frozen[key].bind(features.unsqueeze(1).to(compute))
        return lambda actions: bound(actions.to(compute)).squeeze(-1).float()

    def energy(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.mlp(features.unsqueeze(1), actions).squeeze(-1)

    def counter_examples(self, features: torch.Tensor, noise: Noise) -> torch.Tensor:
        batch, dim = len(features), self.spec.action_dim
        if self.marginal is not None:
            return self.marginal.sample(noise, batch, self.ebm.counter_examples).to(features.device)
        initial = uniform_actions(noise, batch, self.ebm.counter_examples, dim).to(features.device)
        if self.ebm.sampler != "langevin":
            return initial
        fixed = features.detach()
        # Spectral normalisation once for the whole chain, not on each of its forward passes
        # (a power iteration and a division per layer, most of a step's work): the chain only
        # needs gradients with respect to the actions.
        with parametrize.cached():
            return langevin_chain(lambda a: self.energy(fixed, a), initial, self.ebm.langevin, noise)

    def loss(self, features: torch.Tensor, actions: torch.Tensor,
             noise: Noise) -> tuple[torch.Tensor, dict[str, float]]:
        negatives = self.counter_examples(features, noise)
        energies = self.energy(features, torch.cat([actions.unsqueeze(1), negatives], dim=1))
        loss = info_nce(energies[:, 0], energies[:, 1:])
        info_nce_value = loss.item()
        metrics = {"energy_gap": (energies[:, 1:].mean() - energies[:, 0].mean()).item()}
        if self.ebm.max_entropy_weight > 0:
            variance = energy_variance(energies[:, 1:])
            loss = loss + self.ebm.max_entropy_weight * variance
            metrics["negative_energy_variance"] = variance.item()
        if self.marginal is not None:
            marginal_loss = self.marginal.loss(actions, negatives)
            loss = loss + marginal_loss
            metrics["marginal_loss"] = marginal_loss.item()
        penalty_cfg = self.ebm.gradient_penalty
        if penalty_cfg.enabled:
            penalty = gradient_penalty(lambda a: self.energy(features, a), negatives, penalty_cfg.margin)
            loss = loss + penalty_cfg.weight * penalty
            metrics["grad_penalty"] = penalty.item()
        if len(metrics) > 1:   # other terms joined the loss: InfoNCE alone is a curve of its own
            metrics["info_nce"] = info_nce_value
        return loss, metrics

    def predict(self, features: torch.Tensor, noise: Noise) -> torch.Tensor:
        batch, dim = len(features), self.spec.action_dim
        if self.ebm.sampler == "dfo":
            exact = self._bound_energy(features, torch.float32)
            if self.inference_dtype == torch.float32 or self.training:
                best, _, _ = dfo_optimize(exact, batch, dim, self.ebm.dfo, noise, features.device)
            else:
                best, _, _ = dfo_optimize(self._bound_energy(features, self.inference_dtype), batch, dim,
                                          self.ebm.dfo, noise, features.device, rescore_fn=exact)
            return best
        langevin = self.ebm.langevin
        samples = uniform_actions(noise, batch, langevin.inference_samples, dim).to(features.device)
        with parametrize.cached():   # the weights are fixed here: normalise them once
            samples = langevin_chain(lambda a: self.energy(features, a), samples, langevin, noise)
            if langevin.second_chain:
                samples = langevin_chain(lambda a: self.energy(features, a), samples, langevin, noise,
                                         step_init=langevin.second_chain_step_init)
            with torch.no_grad():
                return select_lowest(samples, self.energy(features, samples))

    def measured_gradient_norm(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return energy_gradient_norm(lambda a: self.energy(features, a), actions)


class AutoregressiveEnergyNetwork(PolicyNetwork):
    """One energy model per action dimension j over the prefix y[:j+1] (appendix B.2); the
    observation encoder is shared, the dense heads are separate."""

    def __init__(self, spec: ObservationSpec, encoder: ObservationEncoder, mlp: MLPConfig, ebm: EBMConfig):
        super().__init__(spec, encoder)
        self.ebm = ebm
        self.heads = torch.nn.ModuleList(MLP((encoder.output_dim, j + 1), 1, mlp, output_bias=False)
                                         for j in range(spec.action_dim))

    def prefix_energy(self, dim: int, features: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        return self.heads[dim](features.unsqueeze(1), prefix).squeeze(-1)

    def energy(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.prefix_energy(self.spec.action_dim - 1, features, actions)

    def _sampler_config(self, training: bool) -> DFOConfig:
        """Inference uses ebm.dfo; training runs Alg. 2 with the counter-example count as particles."""
        if not training:
            return self.ebm.dfo
        return replace(self.ebm.dfo, samples=self.ebm.counter_examples,
                       iterations=self.ebm.autoregressive_train_iterations)

    def loss(self, features: torch.Tensor, actions: torch.Tensor,
             noise: Noise) -> tuple[torch.Tensor, dict[str, float]]:
        _, losses = autoregressive_dfo(lambda j, a: self.prefix_energy(j, features, a), len(features),
                                       self.spec.action_dim, self._sampler_config(True), noise,
                                       features.device, positives=actions)
        loss = torch.stack(losses).sum()
        return loss, {"info_nce": loss.item() / len(losses)}

    def predict(self, features: torch.Tensor, noise: Noise) -> torch.Tensor:
        best, _ = autoregressive_dfo(lambda j, a: self.prefix_energy(j, features, a), len(features),
                                     self.spec.action_dim, self._sampler_config(False), noise, features.device)
        return best
