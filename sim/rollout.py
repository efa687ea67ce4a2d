"""Run one episode of a policy (learned or oracle) in an env, recording what it saw and did;
or many episodes in lock-step, the policy acting for all of them in one batched call."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np


class ActingPolicy(Protocol):
    def reset(self) -> None: ...
    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...


class BatchActingPolicy(Protocol):
    history_length: int
    def reset(self) -> None: ...
    def act_batch(self, histories: Sequence[Sequence[dict[str, np.ndarray]]]) -> np.ndarray: ...


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


def run_episodes_lockstep(envs: Sequence, policy: BatchActingPolicy, seeds: Sequence[int]) -> list[Rollout]:
    """One episode per (env, seed), all stepped together: at every step the policy acts once, in
    one batched call, for the episodes still running. Same envs, seeds and success rule as
    run_episode; the policy is reset once for the whole batch (see Policy.act_batch)."""
    if len(envs) != len(seeds):
        raise ValueError(f"{len(envs)} envs for {len(seeds)} seeds")
    policy.reset()
    histories = [[env.reset(seed)] for env, seed in zip(envs, seeds)]
    rollouts = [Rollout(seed=seed, success=False, steps=0, final_distance=float("nan")) for seed in seeds]
    running = list(range(len(envs)))
    while running:
        actions = policy.act_batch([histories[i] for i in running])
        still_running = []
        for i, action in zip(running, actions):
            obs, done, info = envs[i].step(np.asarray(action, dtype=np.float32))
            if done:
                rollouts[i].success = bool(info["success"])
                rollouts[i].steps = envs[i].steps
                rollouts[i].final_distance = float(info["distance"])
            else:
                histories[i] = (histories[i] + [obs])[-policy.history_length:]
                still_running.append(i)
        running = still_running
    return rollouts
