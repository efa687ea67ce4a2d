"""Langevin MCMC over normalised actions (appendix B.3) with the paper's update (eq. 6 of
ebm_theory_vs_practice) or the true Langevin / Euler-Maruyama update (eq. 8)."""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ibc_core.samplers.noise import Noise
from ibc_core.config import LangevinConfig

EnergyFn = Callable[[torch.Tensor], torch.Tensor]


def step_size(cfg: LangevinConfig, index: int, step_init: Optional[float] = None) -> float:
    """Polynomial decay (init - final) * (1 - i / (n - 1)) ** power + final."""
    init = cfg.step_init if step_init is None else step_init
    progress = index / max(cfg.iterations - 1, 1)
    return (init - cfg.step_final) * (1.0 - progress) ** cfg.power + cfg.step_final


def langevin_update(actions: torch.Tensor, grad: torch.Tensor, step: float, cfg: LangevinConfig,
                    normal: torch.Tensor) -> torch.Tensor:
    """One step from `actions` given dE/da and a standard normal draw of the same shape."""
    omega = normal * cfg.noise_scale
    if cfg.update == "ibc":
        delta = step * (0.5 * grad + omega)                 # y - lambda (grad/2 + w)
    else:
        delta = step * grad - (2.0 * step) ** 0.5 * omega   # y - tau grad + sqrt(2 tau) w
    if cfg.delta_clip is not None:
        # The reference clips to clip * (max - min) / 2; the normalised range is [-1, 1].
        delta = delta.clamp(-cfg.delta_clip, cfg.delta_clip)
    return (actions - delta).clamp(-1.0, 1.0)


def langevin_chain(energy_fn: EnergyFn, initial: torch.Tensor, cfg: LangevinConfig, noise: Noise,
                   step_init: Optional[float] = None) -> torch.Tensor:
    """Runs cfg.iterations steps from `initial` [B, N, A]; returns detached samples (no
    gradient flows back through the chain to the model)."""
    actions = initial.detach()
    # Every step's noise drawn up front: the same values as one draw per step (the energy
    # function draws none), in a few kernels instead of a few dozen per step.
    normals = noise.normal_sequence(cfg.iterations, *actions.shape).to(actions.device)
    for index in range(cfg.iterations):
        with torch.enable_grad():
            actions.requires_grad_(True)
            (grad,) = torch.autograd.grad(energy_fn(actions).sum(), actions)
        actions = langevin_update(actions.detach(), grad, step_size(cfg, index, step_init), cfg, normals[index])
    return actions
