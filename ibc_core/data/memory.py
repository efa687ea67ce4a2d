"""Demonstrations loaded once into memory tensors, with observation-history indices, so a
training batch is a few tensor gathers (no per-sample Python work)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ibc_core.data.episodes import DatasetError, episode_files, read_episode, read_meta


@dataclass
class Demonstrations:
    meta: dict[str, Any]
    actions: torch.Tensor                 # [N, A] float32, environment units
    history_index: torch.Tensor           # [N, T] int64 rows into the step arrays
    states: Optional[torch.Tensor] = None  # [N, S] float32
    rgb: Optional[torch.Tensor] = None     # [N, H, W, 3] uint8 (already preprocessed)
    episodes: int = 0

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def observation_keys(self) -> tuple[str, ...]:
        return tuple(k for k in ("state", "rgb") if getattr(self, "states" if k == "state" else k) is not None)

    def observations(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """History windows for dataset rows: {"state": [B, T, S], "rgb": [B, T, H, W, 3]}."""
        window = self.history_index[rows]
        obs = {}
        if self.states is not None:
            obs["state"] = self.states[window]
        if self.rgb is not None:
            obs["rgb"] = self.rgb[window]
        return obs


def history_indices(episode_lengths: list[int], history_length: int) -> torch.Tensor:
    """For step t of an episode starting at row s: rows max(s, t-T+1) .. t (start repeats)."""
    lengths = torch.tensor(episode_lengths)
    starts = torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
    rows = torch.arange(int(lengths.sum()))
    offsets = torch.arange(-history_length + 1, 1)
    return torch.maximum(rows[:, None] + offsets[None, :], starts[:, None])


def load_demonstrations(root: str | Path, history_length: int, successful_only: bool = True,
                        max_episodes: Optional[int] = None, progress: bool = True,
                        observation_keys: Optional[Sequence[str]] = None) -> Demonstrations:
    """observation_keys selects the policy inputs (e.g. only "rgb" from a dataset that also
    stores the ground-truth "state"); None keeps every key the dataset has."""
    meta = read_meta(root)
    for key in ("action_low", "action_high"):
        if key not in meta:
            raise DatasetError(f"{root}/meta.json lacks {key!r} (environment action limits)")
    files = episode_files(root)
    if not files:
        raise DatasetError(f"{root} holds no episodes")
    actions, states, images, lengths = [], [], [], []
    for path in tqdm(files, desc=f"loading {Path(root).name}", disable=not progress, leave=False):
        episode = read_episode(path)
        if successful_only and not episode.success:
            continue
        actions.append(episode.actions)
        lengths.append(len(episode))
        wanted = lambda key: key in episode.observations and (observation_keys is None or key in observation_keys)
        if wanted("state"):
            states.append(episode.observations["state"])
        if wanted("rgb"):
            images.append(episode.observations["rgb"])
        if max_episodes is not None and len(lengths) >= max_episodes:
            break
    if not lengths:
        raise DatasetError(f"{root} holds no {'successful ' if successful_only else ''}episodes")
    missing = [key for key in observation_keys or () if not {"state": states, "rgb": images}[key]]
    if missing:
        raise DatasetError(f"{root} has no {missing} observations (meta.json lists {meta.get('observation_keys')})")
    for name, parts in (("state", states), ("rgb", images)):
        if parts and len(parts) != len(lengths):
            raise DatasetError(f"{root}: only {len(parts)} of {len(lengths)} episodes have {name!r}")
    return Demonstrations(
        meta=meta,
        actions=torch.from_numpy(np.concatenate(actions).astype(np.float32)),
        history_index=history_indices(lengths, history_length),
        states=torch.from_numpy(np.concatenate(states)) if states else None,
        rgb=torch.from_numpy(np.concatenate(images)) if images else None,
        episodes=len(lengths))
