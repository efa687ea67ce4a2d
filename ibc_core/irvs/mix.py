"""Merge datasets of the same task into one, e.g. oracle and noisy-oracle demonstrations for
IRvS (whose returns tell them apart):

    ibc-data mix --out data/irvs/push_mixed data/push_states:50 data/irvs/push_noisy

SOURCE:N takes the first N episodes of SOURCE. The sources must agree on the task, action
limits, control rate and observations; meta.json records where the episodes came from."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from tqdm import tqdm

from ibc_core.data.episodes import DatasetError, DatasetWriter, episode_files, read_episode, read_meta

MUST_AGREE = ("task", "action_low", "action_high", "control_hz", "observation_keys", "state_dim", "image_spec")


def parse_source(text: str) -> tuple[Path, Optional[int]]:
    path, _, count = text.rpartition(":") if ":" in text else (text, "", "")
    if count and not count.isdigit():
        raise DatasetError(f"{text!r}: the episode count after ':' must be a positive integer")
    return Path(path), (int(count) if count else None)


def mix(out: Path, sources: Sequence[tuple[Path, Optional[int]]]) -> int:
    """Writes the selected episodes of every source to `out` (a new directory); returns the count."""
    if out.exists():
        raise DatasetError(f"{out} exists: mix writes a new dataset")
    metas = [read_meta(path) for path, _ in sources]
    for (path, _), meta in zip(sources[1:], metas[1:]):
        differing = [key for key in MUST_AGREE if meta.get(key) != metas[0].get(key)]
        if differing:
            raise DatasetError(f"{path} differs from {sources[0][0]} in {differing}")
    shared = {key: metas[0][key] for key in MUST_AGREE + ("max_steps", "success_tolerance") if key in metas[0]}
    provenance = [{"path": str(path), "episodes": count, "source": meta.get("source"),
                   "oracle_noise": meta.get("oracle_noise", 0.0), "seeds": meta.get("seeds")}
                  for (path, count), meta in zip(sources, metas)]
    writer = DatasetWriter(out, {**shared, "source": "mix", "mixed_from": provenance})
    written = 0
    for path, count in sources:
        for file in tqdm(episode_files(path)[:count], desc=f"mixing {path.name}", unit="ep"):
            writer.add(read_episode(file))
            written += 1
    return written

