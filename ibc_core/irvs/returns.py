"""Returns-to-go from recorded episodes, and demonstrations that carry them.

An episode's terminal reward is Episode.info["reward"] when recorded (e.g. the four-goal task's
goal values), otherwise 1 for success and 0 for failure. The return at step t of a T-step
episode is reward * discount ** (T - 1 - t): a success reached sooner is worth more, a failure
is worth nothing, and both are kept for training."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ibc_core.data.episodes import DatasetError, Episode, episode_files, read_episode
from ibc_core.data.memory import Demonstrations
from ibc_core.config import IRvSConfig

RETURN_KEY = "return"   # the batch entry ReturnDemonstrations.observations adds


def episode_returns(episode: Episode, discount: float) -> np.ndarray:
    """Return-to-go [T] of every step of the episode (float32)."""
    reward = float(episode.info.get("reward", 1.0 if episode.success else 0.0))
    steps_to_go = np.arange(len(episode), dtype=np.float64)[::-1]
    return (reward * discount ** steps_to_go).astype(np.float32)


def normalize_returns(returns: np.ndarray, buffer: float) -> np.ndarray:
    """Min-max to [-1, 1] over the dataset's range widened by `buffer` of it on each side (the
    paper's normalisation, with the action normalisation's buffer); 1/eta acts on this scale."""
    low, high = float(returns.min()), float(returns.max())
    if high - low < 1e-9:
        raise DatasetError(f"all returns equal {low}: IRvS needs episodes of different outcomes or speeds")
    margin = buffer * (high - low)
    return (2.0 * (returns - low + margin) / (high - low + 2 * margin) - 1.0).astype(np.float32)


@dataclass
class ReturnDemonstrations(Demonstrations):
    """Demonstrations plus each step's normalised return [N]; batches gain RETURN_KEY [B]."""
    returns: Optional[torch.Tensor] = None

    def observations(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        obs = super().observations(rows)
        obs[RETURN_KEY] = self.returns[rows]
        return obs


def with_returns(demos: Demonstrations, root: str | Path, cfg: IRvSConfig, successful_only: bool,
                 max_episodes: Optional[int]) -> ReturnDemonstrations:
    """Adds the returns of `root`'s episodes, selected as load_demonstrations selected them
    (same successful_only / max_episodes); raises DatasetError if the steps do not line up."""
    returns = []
    for path in episode_files(root):
        episode = read_episode(path)
        if successful_only and not episode.success:
            continue
        returns.append(episode_returns(episode, cfg.discount))
        if max_episodes is not None and len(returns) >= max_episodes:
            break
    lengths = [len(r) for r in returns]
    if sum(lengths) != len(demos) or len(lengths) != demos.episodes:
        raise DatasetError(f"{root}: returns of {len(lengths)} episodes / {sum(lengths)} steps do not match "
                           f"the {demos.episodes} episodes / {len(demos)} steps loaded")
    normalized = torch.from_numpy(normalize_returns(np.concatenate(returns), cfg.return_buffer))
    return ReturnDemonstrations(meta=demos.meta, actions=demos.actions, history_index=demos.history_index,
                                states=demos.states, rgb=demos.rgb, episodes=demos.episodes,
                                returns=normalized)
