"""The project's demonstration dataset format (written by ibc-data, read by ibc-train).

A dataset is a directory:

    meta.json                 task, action limits, observation keys, image spec, fps, ...
    episodes/000000.npz       one file per episode, written atomically
      actions  float32 [T, A] delta setpoints (metres), one per policy step
      state    float32 [T, S] optional state observation at each step
      rgb      uint8 [T, H, W, 3] optional image observation, already preprocessed
                               (ibc_core.data.preprocess, spec in meta.json)
      success  bool []        whether the episode reached its goal
      seed     int64 []       environment seed (-1 when recorded from a person)

Observation t is what the policy saw when it chose action t.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

FORMAT_VERSION = 1
OBSERVATION_KEYS = ("state", "rgb")


class DatasetError(ValueError):
    """The dataset directory or one of its episodes is missing, corrupt or inconsistent."""


@dataclass
class Episode:
    actions: np.ndarray
    observations: dict[str, np.ndarray]
    success: bool
    seed: int = -1
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.actions)


def validate_episode(episode: Episode, source: str) -> None:
    """DatasetError naming `source` unless the episode can be stored (finite, consistent lengths)."""
    actions = episode.actions
    if actions.ndim != 2 or len(actions) == 0:
        raise DatasetError(f"{source}: actions must be a non-empty [T, A] array, got {actions.shape}")
    if not np.all(np.isfinite(actions)):
        raise DatasetError(f"{source}: actions contain NaN or inf")
    if not episode.observations:
        raise DatasetError(f"{source}: no observations (expected some of {OBSERVATION_KEYS})")
    for key, value in episode.observations.items():
        if key not in OBSERVATION_KEYS:
            raise DatasetError(f"{source}: unknown observation key {key!r}")
        if len(value) != len(actions):
            raise DatasetError(f"{source}: {key} has {len(value)} steps but actions have {len(actions)}")
    if "rgb" in episode.observations:
        rgb = episode.observations["rgb"]
        if rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[-1] != 3:
            raise DatasetError(f"{source}: rgb must be uint8 [T, H, W, 3], got {rgb.dtype} {rgb.shape}")


class DatasetWriter:
    """Appends episodes to a dataset directory; resumes numbering if it already holds some."""

    def __init__(self, root: str | Path, meta: Mapping[str, Any]):
        self.root = Path(root)
        (self.root / "episodes").mkdir(parents=True, exist_ok=True)
        meta_path = self.root / "meta.json"
        meta = {"format_version": FORMAT_VERSION, **meta}
        if meta_path.exists():
            existing = json.loads(meta_path.read_text())
            mismatched = [k for k in meta if k in existing and existing[k] != meta[k] and k != "num_episodes"]
            if mismatched:
                raise DatasetError(f"{self.root} already holds a dataset whose {mismatched} differ; "
                                   "write to a new directory")
        _atomic_write_text(meta_path, json.dumps(meta, indent=2, sort_keys=True))
        self._next_index = len(episode_files(self.root))

    def add(self, episode: Episode) -> Path:
        validate_episode(episode, f"episode {self._next_index}")
        path = self.root / "episodes" / f"{self._next_index:06d}.npz"
        self._next_index += 1
        arrays = {"actions": episode.actions.astype(np.float32),
                  "success": np.asarray(bool(episode.success)),
                  "seed": np.asarray(int(episode.seed), dtype=np.int64),
                  "info": np.asarray(json.dumps(episode.info))}
        for key, value in episode.observations.items():
            arrays[key] = value.astype(np.uint8 if key == "rgb" else np.float32)
        _atomic_save_npz(path, arrays)
        return path


def episode_files(root: str | Path) -> list[Path]:
    return sorted((Path(root) / "episodes").glob("*.npz"))


def read_meta(root: str | Path) -> dict[str, Any]:
    path = Path(root) / "meta.json"
    if not path.is_file():
        raise DatasetError(f"{root} is not a dataset: {path} is missing")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc}") from exc
    if meta.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{path}: format_version {meta.get('format_version')} is not {FORMAT_VERSION}")
    return meta


def read_episode(path: str | Path) -> Episode:
    try:
        with np.load(path, allow_pickle=False) as data:
            observations = {k: data[k] for k in OBSERVATION_KEYS if k in data.files}
            episode = Episode(actions=data["actions"], observations=observations,
                              success=bool(data["success"]), seed=int(data["seed"]),
                              info=json.loads(str(data["info"])) if "info" in data.files else {})
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: unreadable episode ({type(exc).__name__}: {exc})") from exc
    validate_episode(episode, str(path))
    return episode


def iter_episodes(root: str | Path) -> Iterator[Episode]:
    read_meta(root)
    files = episode_files(root)
    if not files:
        raise DatasetError(f"{root} holds no episodes")
    for path in files:
        yield read_episode(path)


def _atomic_write_text(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


def _atomic_save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # Write to a temporary file and rename, so a crash never leaves a half-written episode.
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".npz.tmp") as tmp:
        np.savez_compressed(tmp, **arrays)
    os.replace(tmp.name, path)
