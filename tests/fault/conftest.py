"""Shared pieces of the fault tests: a tiny real pixel checkpoint and node command lines."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from cell.paths import share_file


@pytest.fixture(scope="session")
def tiny_rgb_checkpoint(tmp_path_factory) -> Path:
    """A real ibc_core checkpoint observing "rgb" only (what the real cell provides), trained for
    a few steps on random 24x32 frames: it checks the plumbing, not the policy's quality."""
    from ibc_core.config_io import load_config
    from ibc_core.data.synthetic import write_function_dataset
    from ibc_core.config import TrainConfig
    from ibc_core.training.trainer import Trainer

    root = tmp_path_factory.mktemp("tiny_rgb")
    rng = np.random.default_rng(0)
    n = 60
    dataset = write_function_dataset(root / "data", rng.normal(size=(n, 10)).astype(np.float32),
                                     rng.uniform(-0.03, 0.03, (n, 2)).astype(np.float32), [-0.1, -0.1], [0.1, 0.1],
                                     images=rng.integers(0, 256, (n, 24, 32, 3), dtype=np.uint8),
                                     steps_per_episode=30)
    raw = {"data": {"path": str(dataset), "observation_keys": ["rgb"]},
           "model": {"mlp": {"width": 32, "depth": 2}, "encoder": {"channels": [4, 8]}},
           "ebm": {"counter_examples": 8, "dfo": {"samples": 64}},
           "optim": {"batch_size": 8, "steps": 3},
           "run": {"out_dir": str(root / "run"), "progress": False}}
    return Trainer(load_config(TrainConfig, raw)).run()


def node_argv(module: str, params_file: str | None, *parameters: str) -> list[str]:
    """Command line of a node module with its shipped params file and -p overrides."""
    argv = [sys.executable, "-m", f"ibc_ros.nodes.{module}", "--ros-args"]
    if params_file:
        argv += ["--params-file", str(share_file("config", params_file))]
    for parameter in parameters:
        argv += ["-p", parameter]
    return argv
