"""Run one episode of a policy (learned or oracle) in an env, recording what it saw and did."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np


class ActingPolicy(Protocol):
    def reset(self) -> None: ...
    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...


@dataclass
class Rollout:
    seed: int
    success: bool
    steps: int
    final_distance: float
    observations: dict[str, list[np.ndarray]] = field(default_factory=dict)
    actions: list[np.ndarray] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)


def run_episode(env, policy: ActingPolicy, seed: int, record_observations: bool = False,
                frame_fn: Callable[[], np.ndarray] | None = None) -> Rollout:
    """Observation t is the one the policy acted on to choose action t; ``frame_fn`` (if
    given) is called after reset and after every step, e.g. to film the episode."""
    obs = env.reset(seed)
    policy.reset()
    rollout = Rollout(seed=seed, success=False, steps=0, final_distance=float("nan"))
    if frame_fn is not None:
        rollout.frames.append(frame_fn())
    done, info = False, {}
    while not done:
        action = np.asarray(policy.act(obs), dtype=np.float32)
        if record_observations:
            for key, value in obs.items():
                rollout.observations.setdefault(key, []).append(value)
            rollout.actions.append(action)
        obs, done, info = env.step(action)
        if frame_fn is not None:
            rollout.frames.append(frame_fn())
    rollout.success = bool(info["success"])
    rollout.steps = env.steps
    rollout.final_distance = float(info["distance"])
    return rollout
