"""`ibc-train train_push_pixels` shrunk to a few seconds: a real checkpoint for the tests that
exercise the plumbing (nodes, replay, recording), not the policy's quality."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# 2 frames (the paper's history; the shipped config uses 1): the plumbing tests then also check
# that nodes keep and reset the frame history exactly as offline inference does.
TINY_OVERRIDES = ("optim.batch_size=8", "ebm.counter_examples=8", "ebm.dfo.samples=64",
                  "model.encoder.channels=[4,8,8,8]", "model.mlp.width=32", "model.mlp.depth=2",
                  "data.history_length=2")


def train_tiny_pixel_policy(dataset: Path, run: Path, steps: int = 3, *extra: str) -> Path:
    """Train the pixel config on `dataset` for `steps` steps into `run`; returns run/policy.pt.
    A failure raises with the trainer's stderr tail."""
    argv = [sys.executable, "-m", "ibc_cli.train", "train_push_pixels", f"data.path={dataset}",
            f"run.out_dir={run}", f"optim.steps={steps}", f"run.checkpoint_every={steps}",
            f"run.log_every={steps}", *TINY_OVERRIDES, *extra]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise AssertionError(f"tiny training failed:\n{result.stderr[-3000:]}")
    return run / "policy.pt"
