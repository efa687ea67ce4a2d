"""The IRvS paper's didactic four-goal room (section 3.2, Fig. 2).

A point in the square [-1, 1]^2 moves a fixed step in the direction its action names (the
paper's representation a = arctan(dy / dx), one number in [-pi, pi]; linear dynamics
s' = clip(s + speed (cos a, sin a))).
Each corner holds a goal with its own reward: (-1, -1) -> -1, (1, -1) -> -1/4, (-1, 1) -> 1/2,
(1, 1) -> 1. An episode ends when the point comes within goal_radius of a goal, and its return
is that goal's reward (0 if no goal is reached in max_steps). The behaviour policy ignores the
rewards: it picks one of the four goals uniformly at random and heads for it at a fixed speed
with a little heading noise, so 25 % of the demonstrations are optimal.

    python -m sim.four_goals --out data/four_goals --episodes 400     # dataset for ibc-train
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ibc_core.data.episodes import DatasetWriter, Episode

GOALS = np.array([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]])
REWARDS = np.array([-1.0, -0.25, 0.5, 1.0])
BEST_GOAL = int(np.argmax(REWARDS))


@dataclass
class FourGoalsConfig:
    speed: float = 0.1             # step length per action
    goal_radius: float = 0.15
    max_steps: int = 60
    start_extent: float = 0.8      # starts uniform in [-extent, extent]^2
    heading_noise: float = 0.15    # rad, behaviour policy


class FourGoalsEnv:
    def __init__(self, config: Optional[FourGoalsConfig] = None):
        self.config = config or FourGoalsConfig()
        self.action_low = np.array([-np.pi])
        self.action_high = np.array([np.pi])
        self.reset_to(np.zeros(2))

    def reset(self, seed: int) -> dict[str, np.ndarray]:
        extent = self.config.start_extent
        return self.reset_to(np.random.default_rng(seed).uniform(-extent, extent, 2))

    def reset_to(self, position: np.ndarray) -> dict[str, np.ndarray]:
        self.position = np.asarray(position, dtype=np.float64).copy()
        self.steps = 0
        self.reached: Optional[int] = None
        return self.observation()

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], bool, dict]:
        heading = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        step = self.config.speed * np.array([np.cos(heading), np.sin(heading)])
        self.position = np.clip(self.position + step, -1.0, 1.0)
        self.steps += 1
        distances = np.linalg.norm(GOALS - self.position, axis=1)
        if distances.min() < self.config.goal_radius:
            self.reached = int(distances.argmin())
        done = self.reached is not None or self.steps >= self.config.max_steps
        return self.observation(), done, {"goal": self.reached, "reward": self.reward()}

    def reward(self) -> float:
        return 0.0 if self.reached is None else float(REWARDS[self.reached])

    def observation(self) -> dict[str, np.ndarray]:
        return {"state": self.position.astype(np.float32)}


class GoalAgnosticPolicy:
    """Behaviour policy: a uniformly chosen goal per episode, straight at it with heading noise."""

    def __init__(self, config: FourGoalsConfig, rng: np.random.Generator):
        self.config, self.rng = config, rng
        self.reset()

    def reset(self) -> None:
        self.goal = int(self.rng.integers(len(GOALS)))

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        offset = GOALS[self.goal] - obs["state"]
        heading = np.arctan2(offset[1], offset[0]) + self.rng.normal(0.0, self.config.heading_noise)
        return np.array([(heading + np.pi) % (2 * np.pi) - np.pi], dtype=np.float32)


def write_dataset(root: str | Path, episodes: int, seed: int = 0,
                  config: Optional[FourGoalsConfig] = None) -> Path:
    """Behaviour-policy episodes; Episode.info["reward"] holds the reached goal's reward."""
    config = config or FourGoalsConfig()
    env = FourGoalsEnv(config)
    policy = GoalAgnosticPolicy(config, np.random.default_rng(seed))
    writer = DatasetWriter(root, {"task": "four_goals", "action_low": env.action_low.tolist(),
                                  "action_high": env.action_high.tolist(), "control_hz": 1.0,
                                  "observation_keys": ["state"], "state_dim": 2, "max_steps": config.max_steps})
    for index in range(episodes):
        obs, done, states, actions = env.reset(seed * 1_000_003 + index), False, [], []
        policy.reset()
        while not done:
            action = policy.act(obs)
            states.append(obs["state"])
            actions.append(action)
            obs, done, _ = env.step(action)
        writer.add(Episode(actions=np.stack(actions), observations={"state": np.stack(states)},
                           success=env.reached is not None, seed=index,
                           info={"reward": env.reward(), "goal": env.reached}))
    return Path(root)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.four_goals", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--episodes", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    write_dataset(args.out, args.episodes, args.seed)
    print(f"wrote {args.episodes} four-goal episodes to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
