"""Training losses: InfoNCE over one positive and N counter-examples, gradient penalty (B.3.1),
and the maximum-entropy terms of ebm_theory_vs_practice (appendix A)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def info_nce(positive_energy: torch.Tensor, negative_energies: torch.Tensor) -> torch.Tensor:
    """-log softmax(-E)[positive], averaged over the batch. positive [B], negatives [B, N]."""
    logits = -torch.cat([positive_energy.unsqueeze(-1), negative_energies], dim=-1)
    target = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, target)


def gradient_penalty(energy_fn: Callable[[torch.Tensor], torch.Tensor], samples: torch.Tensor,
                     margin: float) -> torch.Tensor:
    """mean over samples of max(0, ||dE/da||_inf - M)^2, differentiable w.r.t. the model."""
    actions = samples.detach().requires_grad_(True)
    energies = energy_fn(actions)
    (grad,) = torch.autograd.grad(energies.sum(), actions, create_graph=True)
    return (grad.abs().amax(dim=-1) - margin).clamp(min=0.0).pow(2).mean()


def energy_gradient_norm(energy_fn: Callable[[torch.Tensor], torch.Tensor],
                         samples: torch.Tensor) -> torch.Tensor:
    """||dE/da||_inf per sample [B, N] (a diagnostic; no graph kept)."""
    with torch.enable_grad():
        actions = samples.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy_fn(actions).sum(), actions)
    return grad.abs().amax(dim=-1)


def energy_variance(negative_energies: torch.Tensor) -> torch.Tensor:
    """1/2 Var over counter-examples of their energies [B, N], averaged over the batch: the
    maximum-entropy term (appendix A of ebm_theory_vs_practice); small = close to uniform."""
    return 0.5 * negative_energies.var(dim=-1, unbiased=False).mean()


def max_entropy_loss(positive_energy: torch.Tensor, negative_energies: torch.Tensor,
                     entropy_weight: float = 1.0, positive_l2: float = 0.0) -> torch.Tensor:
    """NLL + conditional entropy with counter-examples drawn from the model (appendix A):
    E(pos) - mean E(neg) + weight * 1/2 Var E(neg), plus an optional L2 anchor on the positive
    energies (the loss is otherwise blind to a constant offset). positive [B], negatives [B, N]."""
    contrast = positive_energy.mean() - negative_energies.mean()
    anchor = positive_l2 * positive_energy.pow(2).mean()
    return contrast + entropy_weight * energy_variance(negative_energies) + anchor
