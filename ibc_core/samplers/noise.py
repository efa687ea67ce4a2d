"""Random numbers for samplers: a torch.Generator at inference, and a counter-based hash while
training, so a sample's counter-examples depend only on (seed, step, global sample index) and a
data-parallel run draws exactly what a single-process run with the same global batch draws."""
from __future__ import annotations

import math
from typing import Protocol

import torch

_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


_M1 = _signed(0xBF58476D1CE4E5B9)
_M2 = _signed(0x94D049BB133111EB)
_GOLDEN = _signed(0x9E3779B97F4A7C15)


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    # Logical shift: torch's >> on int64 is arithmetic.
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _mix(x: torch.Tensor) -> torch.Tensor:
    """splitmix64 finaliser on int64 tensors (wrapping multiplication)."""
    x = (x ^ _shift_right(x, 30)) * _M1
    x = (x ^ _shift_right(x, 27)) * _M2
    return x ^ _shift_right(x, 31)


class Noise(Protocol):
    def uniform(self, batch: int, *shape: int) -> torch.Tensor: ...
    def normal(self, batch: int, *shape: int) -> torch.Tensor: ...


class GeneratorNoise:
    """Inference noise from a seeded torch.Generator on the model's device."""

    def __init__(self, generator: torch.Generator, device: torch.device):
        self.generator, self.device = generator, device

    def uniform(self, batch: int, *shape: int) -> torch.Tensor:
        return torch.rand((batch, *shape), generator=self.generator, device=self.device)

    def normal(self, batch: int, *shape: int) -> torch.Tensor:
        return torch.randn((batch, *shape), generator=self.generator, device=self.device)


class HashedNoise:
    """Noise keyed by (seed, step, sample id, call number, element): independent of batch layout."""

    def __init__(self, seed: int, step: int, sample_ids: torch.Tensor):
        self.sample_ids = sample_ids.to(torch.int64)
        base = torch.tensor(_signed(seed * 0x632BE59BD9B4E019 + step), dtype=torch.int64)
        self._base = _mix(base + _GOLDEN).to(sample_ids.device)
        self._calls = 0

    def _bits(self, batch: int, shape: tuple[int, ...]) -> torch.Tensor:
        if batch != len(self.sample_ids):
            raise ValueError(f"noise for {batch} samples requested, have {len(self.sample_ids)} sample ids")
        self._calls += 1
        numel = math.prod(shape)
        key = _mix(self._base + _signed(self._calls * _GOLDEN))
        per_sample = _mix(key + self.sample_ids * _M2)                        # [B]
        element = torch.arange(numel, device=self.sample_ids.device, dtype=torch.int64)
        return _mix(per_sample[:, None] + (element[None, :] + 1) * _GOLDEN).view(batch, *shape)

    def uniform(self, batch: int, *shape: int) -> torch.Tensor:
        bits = _shift_right(self._bits(batch, shape), 40)                    # top 24 bits
        return bits.to(torch.float32) * (1.0 / (1 << 24))

    def normal(self, batch: int, *shape: int) -> torch.Tensor:
        # Box-Muller on two independent uniform draws; 1 - u keeps the log finite.
        u1 = 1.0 - self.uniform(batch, *shape)
        u2 = self.uniform(batch, *shape)
        return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
