"""Build a task's env and its oracle by name (push_states, push_multi_states, push_pixels,
particle_<N>d), and the seed ranges that keep training and evaluation apart."""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np

from sim.block_push import PushEnv
from sim.config import TaskConfig, load_task_config
from sim.oracles import ParticleOracle, PushOracle
from sim.particle import ParticleEnv

Env = Union[PushEnv, ParticleEnv]

# Demonstrations use seeds below EVAL_SEED_BASE, evaluation seeds from it upwards, so no
# evaluation episode ever repeats a training episode.
EVAL_SEED_BASE = 1_000_000


def make_env(task: str | TaskConfig, overrides: Sequence[str] = ()) -> Env:
    config = task if isinstance(task, TaskConfig) else load_task_config(task, overrides)
    return PushEnv(config) if config.kind == "push" else ParticleEnv(config)


class OraclePolicy:
    """A task's scripted oracle behind the Policy API (reset(), act(obs), bounds, keys):
    the demonstrator of ibc-data and the baseline of `ibc-eval --oracle`."""

    image_spec = None
    history_length = 1

    def __init__(self, env: Env):
        config = env.config
        if isinstance(env, PushEnv):
            self.oracle: PushOracle | ParticleOracle = PushOracle(config.control_hz, env.world.num_targets,
                                                                   config.success_tolerance)
        else:
            self.oracle = ParticleOracle(env.dim, config.particle_goal_radius)
        self.observation_keys = ("state",)
        self.action_low = np.asarray(env.action_low)
        self.action_high = np.asarray(env.action_high)

    def reset(self) -> None:
        self.oracle.reset()

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.clip(self.oracle.act(obs), self.action_low, self.action_high).astype(np.float32)
