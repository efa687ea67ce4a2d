"""Data pipeline: history windows, action bounds (buffer + env clip), normalisation, augmentation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ibc_core.data.episodes import DatasetError
from ibc_core.data.memory import history_indices, load_demonstrations
from ibc_core.data.synthetic import write_function_dataset
from ibc_core.normalization import ActionBounds, ObservationStats
from ibc_core.samplers.noise import HashedNoise
from ibc_core.config import AugmentConfig
from ibc_core.training.trainer import augment_images


def test_history_windows_repeat_the_episode_start() -> None:
    index = history_indices([3, 2], history_length=3)
    expected = [[0, 0, 0], [0, 0, 1], [0, 1, 2], [3, 3, 3], [3, 3, 4]]
    assert index.tolist() == expected


def test_action_bounds_buffer_and_env_clip() -> None:
    actions = np.array([[-0.02, 0.0], [0.02, 0.098]], np.float32)
    bounds = ActionBounds.from_data(actions, np.array([-0.1, -0.1]), np.array([0.1, 0.1]), buffer=0.05)
    np.testing.assert_allclose(bounds.low, [-0.022, -0.0049], atol=1e-7)
    np.testing.assert_allclose(bounds.high, [0.022, 0.1], atol=1e-7)  # 0.1029 clipped to the env limit
    normalized = bounds.normalize(torch.from_numpy(actions))
    assert normalized.min() >= -1 and normalized.max() <= 1
    torch.testing.assert_close(bounds.denormalize(normalized), torch.from_numpy(actions))


def test_observation_statistics_are_per_dimension() -> None:
    states = np.random.default_rng(0).normal([1.0, -2.0, 5.0], [0.5, 2.0, 0.0], size=(1000, 3)).astype(np.float32)
    stats = ObservationStats.of_states(states)
    normalized = (states - stats.mean) / stats.std
    np.testing.assert_allclose(normalized[:, :2].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(normalized[:, :2].std(0), 1, atol=1e-4)
    assert np.all(np.isfinite(normalized))  # a constant dimension does not divide by zero


def test_load_demonstrations(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (90, 8, 12, 3), dtype=np.uint8)
    write_function_dataset(tmp_path / "d", rng.normal(size=(90, 4)), rng.normal(size=(90, 2)) * 0.01,
                           [-0.1, -0.1], [0.1, 0.1], images=images, steps_per_episode=30)
    demos = load_demonstrations(tmp_path / "d", history_length=2, progress=False)
    assert len(demos) == 90 and demos.episodes == 3 and demos.observation_keys == ("state", "rgb")
    obs = demos.observations(torch.tensor([0, 31]))
    assert obs["rgb"].shape == (2, 2, 8, 12, 3) and obs["rgb"].dtype == torch.uint8
    torch.testing.assert_close(obs["state"][0, 0], obs["state"][0, 1])   # first step of an episode
    torch.testing.assert_close(obs["state"][1, 0], demos.states[30])      # previous step
    limited = load_demonstrations(tmp_path / "d", history_length=2, max_episodes=1, progress=False)
    assert len(limited) == 30
    with pytest.raises(DatasetError, match="is not a dataset"):
        load_demonstrations(tmp_path / "missing", 2)


def test_augmentation_shifts_and_is_deterministic_per_sample() -> None:
    rgb = torch.randint(0, 256, (4, 2, 16, 20, 3), dtype=torch.uint8)
    cfg = AugmentConfig(shift_pixels=3, brightness=0.2)
    out = augment_images(rgb, cfg, HashedNoise(0, 1, torch.arange(4)))
    assert out.shape == rgb.shape and out.dtype == torch.uint8
    assert not torch.equal(out, rgb)
    again = augment_images(rgb[2:], cfg, HashedNoise(0, 1, torch.arange(2, 4)))
    assert torch.equal(out[2:], again)
    shift_only = augment_images(rgb, AugmentConfig(shift_pixels=2), HashedNoise(0, 2, torch.arange(4)))
    # Both frames of a history get the same shift, so their difference is shifted too.
    interior = shift_only[:, :, 2:-2, 2:-2]
    assert any(torch.equal(interior[b], rgb[b, :, 2 + dy:14 + dy, 2 + dx:18 + dx])
               for b in range(4) for dy in range(-2, 3) for dx in range(-2, 3))
