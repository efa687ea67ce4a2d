"""Run one episode of a policy (learned or oracle) in an env, recording what it saw and did;
or many episodes in lock-step, the policy acting for all of them in one batched call. How an
episode ended (EpisodeResult) and the summary of many (summarize): one record and one summary for
ibc-eval and the ROS sim node's episode supervisor."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np


class ActingPolicy(Protocol):
    def reset(self) -> None: ...
    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...


class BatchActingPolicy(Protocol):
    history_length: int
    def reset(self) -> None: ...
    def act_batch(self, histories: Sequence[Sequence[dict[str, np.ndarray]]]) -> np.ndarray: ...


@dataclass
class EpisodeResult:
    """How one episode ended: ibc-eval's per_episode and the sim node's results entries."""
    seed: int
    success: bool
    steps: int                 # policy periods run
    final_distance: float      # block to its (last) target at the end (m)
    score: float = 0.0         # the task's partial credit at the end, in [0, 1] (1.0 = success)

    def end(self, steps: int, info: dict) -> None:
        """The episode is over after ``steps``: its outcome from the env's last step info."""
        self.success, self.steps, self.final_distance = bool(info["success"]), steps, float(info["distance"])
        self.score = float(info["score"])

    def result(self) -> EpisodeResult:
        """The outcome alone (a Rollout without what it recorded)."""
        return EpisodeResult(self.seed, self.success, self.steps, self.final_distance, self.score)


def wilson_interval(successes: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion."""
    if trials <= 0:
        raise ValueError("trials must be positive")
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    """The summary keys ibc-eval and the sim node share: episodes, successes, success_rate (0.0
    before any episode ended, as an interrupted sim reports), wilson95, mean_steps,
    mean_final_distance and mean_score (the paper's Table 6 measure: partial credit per episode;
    None before any episode ended: no interval or mean of nothing)."""
    episodes = len(results)
    successes = sum(bool(r.success) for r in results)
    ended = episodes > 0
    return {"episodes": episodes, "successes": successes, "success_rate": successes / episodes if ended else 0.0,
            "wilson95": list(wilson_interval(successes, episodes)) if ended else None,
            "mean_steps": float(np.mean([r.steps for r in results])) if ended else None,
            "mean_final_distance": float(np.mean([r.final_distance for r in results])) if ended else None,
            "mean_score": float(np.mean([r.score for r in results])) if ended else None}


@dataclass
class Rollout(EpisodeResult):
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
    rollout.end(env.steps, info)
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
                rollouts[i].end(envs[i].steps, info)
            else:
                histories[i] = (histories[i] + [obs])[-policy.history_length:]
                still_running.append(i)
        running = still_running
    return rollouts
