"""Training losses: InfoNCE over one positive and N counter-examples, gradient penalty (B.3.1)."""
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
