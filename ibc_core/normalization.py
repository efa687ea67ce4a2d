"""Observation and action normalisation (appendix B): observations to zero mean / unit variance
per dimension, actions min-max scaled to [-1, 1] inside data bounds widened by a buffer and
clipped to the environment's limits."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

_MIN_STD = 1e-6  # constant dimensions (e.g. a fixed target pose) must not divide by zero


@dataclass
class ObservationStats:
    """Per-dimension mean/std of one observation key (state: [S]; rgb: per channel [3], 0..1 scale)."""
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of_states(cls, states: np.ndarray) -> "ObservationStats":
        return cls(states.mean(0).astype(np.float32), np.maximum(states.std(0), _MIN_STD).astype(np.float32))

    @classmethod
    def of_images(cls, frames: np.ndarray) -> "ObservationStats":
        # Channel statistics from a subsample: exact enough and cheap on large image sets.
        sample = frames[:: max(1, len(frames) // 2000)].reshape(-1, 3).astype(np.float64) / 255.0
        return cls(sample.mean(0).astype(np.float32), np.maximum(sample.std(0), _MIN_STD).astype(np.float32))

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, raw: dict[str, list[float]]) -> "ObservationStats":
        return cls(np.asarray(raw["mean"], np.float32), np.asarray(raw["std"], np.float32))


@dataclass
class ActionBounds:
    """Env-space sampling bounds; the model works in [-1, 1] over them."""
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_data(cls, actions: np.ndarray, env_low: np.ndarray, env_high: np.ndarray,
                  buffer: float) -> "ActionBounds":
        data_low, data_high = actions.min(0), actions.max(0)
        margin = buffer * (data_high - data_low)
        low = np.clip(data_low - margin, env_low, env_high)
        high = np.clip(data_high + margin, env_low, env_high)
        # A dimension the demonstrations never vary still needs a non-empty interval.
        flat = high - low < 1e-6
        low = np.where(flat, np.maximum(low - 1e-3, env_low), low)
        high = np.where(flat, np.minimum(high + 1e-3, env_high), high)
        if np.any(high <= low):
            raise ValueError(f"empty action bounds low={low} high={high} (env limits {env_low}..{env_high})")
        return cls(low.astype(np.float32), high.astype(np.float32))

    def normalize(self, actions: torch.Tensor) -> torch.Tensor:
        low, high = self._tensors(actions)
        return 2.0 * (actions - low) / (high - low) - 1.0

    def denormalize(self, actions: torch.Tensor) -> torch.Tensor:
        low, high = self._tensors(actions)
        return low + (actions.clamp(-1.0, 1.0) + 1.0) * 0.5 * (high - low)

    def _tensors(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.as_tensor(self.low, dtype=like.dtype, device=like.device),
                torch.as_tensor(self.high, dtype=like.dtype, device=like.device))

    def to_dict(self) -> dict[str, list[float]]:
        return {"low": self.low.tolist(), "high": self.high.tolist()}

    @classmethod
    def from_dict(cls, raw: dict[str, list[float]]) -> "ActionBounds":
        return cls(np.asarray(raw["low"], np.float32), np.asarray(raw["high"], np.float32))
