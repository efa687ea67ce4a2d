"""Small function-fitting datasets in the project's dataset format (the paper's section 3
examples: step functions, multi-valued functions), for tests and quick experiments."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ibc_core.data.episodes import DatasetWriter, Episode


def write_function_dataset(root: str | Path, inputs: np.ndarray, targets: np.ndarray,
                           action_low: list[float], action_high: list[float],
                           images: Optional[np.ndarray] = None, steps_per_episode: int = 50) -> Path:
    """Writes (observation x_i, action y_i) pairs as episodes of `steps_per_episode` steps.

    inputs [N, S] become the "state" observation (and images [N, H, W, 3], if given, "rgb");
    targets [N, A] the actions. Train with data.history_length=1: pairs are independent."""
    meta = {"task": "function_fit", "action_low": list(action_low), "action_high": list(action_high),
            "control_hz": 1.0, "observation_keys": ["state"] + (["rgb"] if images is not None else [])}
    if images is not None:
        meta["image_spec"] = {"height": int(images.shape[1]), "width": int(images.shape[2]),
                              "crop": [0.0, 0.0, 1.0, 1.0]}
    writer = DatasetWriter(root, meta)
    for start in range(0, len(inputs), steps_per_episode):
        part = slice(start, start + steps_per_episode)
        observations = {"state": np.asarray(inputs[part], np.float32)}
        if images is not None:
            observations["rgb"] = np.asarray(images[part], np.uint8)
        writer.add(Episode(actions=np.asarray(targets[part], np.float32), observations=observations, success=True))
    return Path(root)
