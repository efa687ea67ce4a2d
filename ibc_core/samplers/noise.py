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
    def normal_sequence(self, count: int, batch: int, *shape: int) -> torch.Tensor:
        """[count, batch, *shape]: what `count` successive normal() calls return."""
        ...


class GeneratorNoise:
    """Inference noise from a seeded torch.Generator on the model's device."""

    def __init__(self, generator: torch.Generator, device: torch.device):
        self.generator, self.device = generator, device

    def uniform(self, batch: int, *shape: int) -> torch.Tensor:
        return torch.rand((batch, *shape), generator=self.generator, device=self.device)

    def normal(self, batch: int, *shape: int) -> torch.Tensor:
        return torch.randn((batch, *shape), generator=self.generator, device=self.device)

    def normal_sequence(self, count: int, batch: int, *shape: int) -> torch.Tensor:
        # One draw per call: a single large draw would consume the generator differently.
        return torch.stack([self.normal(batch, *shape) for _ in range(count)])


class HashedNoise:
    """Noise keyed by (seed, step, sample id, call number, element): independent of batch layout."""

    def __init__(self, seed: int, step: int, sample_ids: torch.Tensor):
        self.sample_ids = sample_ids.to(torch.int64)
        base = torch.tensor(_signed(seed * 0x632BE59BD9B4E019 + step), dtype=torch.int64)
        self._base = _mix(base + _GOLDEN).to(sample_ids.device)
        self._calls = 0

    def _bits(self, calls: int, batch: int, shape: tuple[int, ...]) -> torch.Tensor:
        """[calls, batch, *shape]: the bits of the next `calls` calls, computed together (one
        set of kernels instead of one per call: a Langevin chain draws 50)."""
        if batch != len(self.sample_ids):
            raise ValueError(f"noise for {batch} samples requested, have {len(self.sample_ids)} sample ids")
        device = self.sample_ids.device
        numbers = torch.arange(self._calls + 1, self._calls + calls + 1, device=device, dtype=torch.int64)
        self._calls += calls
        numel = math.prod(shape)
        key = _mix(self._base + numbers * _GOLDEN)                            # [calls], wrapping
        per_sample = _mix(key[:, None] + self.sample_ids[None, :] * _M2)      # [calls, B]
        element = torch.arange(numel, device=device, dtype=torch.int64)
        return _mix(per_sample[:, :, None] + (element + 1) * _GOLDEN).view(calls, batch, *shape)

    def _uniforms(self, calls: int, batch: int, shape: tuple[int, ...]) -> torch.Tensor:
        bits = _shift_right(self._bits(calls, batch, shape), 40)             # top 24 bits
        return bits.to(torch.float32) * (1.0 / (1 << 24))

    def uniform(self, batch: int, *shape: int) -> torch.Tensor:
        return self._uniforms(1, batch, shape)[0]

    def normal(self, batch: int, *shape: int) -> torch.Tensor:
        return self.normal_sequence(1, batch, *shape)[0]

    def normal_sequence(self, count: int, batch: int, *shape: int) -> torch.Tensor:
        # Box-Muller on two independent uniform draws (calls 2i+1, 2i+2 for the i-th normal);
        # 1 - u keeps the log finite.
        uniforms = self._uniforms(2 * count, batch, shape)
        u1, u2 = 1.0 - uniforms[0::2], uniforms[1::2]
        return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
