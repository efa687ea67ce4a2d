"""Build a task's env and its oracle by name (push_states, push_multi_states, push_pixels, the
real-cell twins push_red_then_green, push_multimodal, insert_blue, sort_blue_from_yellow, and
particle_<N>d), and the seed ranges that keep training and evaluation apart."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence, Union

import numpy as np

from sim.config import TaskConfig, load_task_config
from sim.fixture_oracles import FixtureOracle
from sim.oracles import ParticleOracle, PushOracle, episode_rng
from sim.particle import ParticleEnv

if TYPE_CHECKING:
    from sim.env import PushEnv

Env = Union["PushEnv", ParticleEnv]

# Demonstrations use seeds below EVAL_SEED_BASE, evaluation seeds from it upwards, so no
# evaluation episode ever repeats a training episode.
EVAL_SEED_BASE = 1_000_000
# Checkpoint selection (scripts/select_checkpoint.py) evaluates from here: reported results use
# seeds from EVAL_SEED_BASE, so a checkpoint is never chosen on an episode it is reported on.
VALIDATION_SEED_BASE = 2_000_000


def make_env(task: str | TaskConfig, overrides: Sequence[str] = ()) -> Env:
    config = task if isinstance(task, TaskConfig) else load_task_config(task, overrides)
    if config.kind == "particle":
        return ParticleEnv(config)
    # Imported here: the particle tasks run without PyBullet (e.g. on a GPU machine without it).
    from sim.env import PushEnv
    return PushEnv(config)


class OraclePolicy:
    """A task's scripted oracle behind the Policy API (reset(), act(obs), bounds, keys):
    the demonstrator of ibc-data and the baseline of `ibc-eval --oracle`."""

    image_spec = None
    history_length = 1

    def __init__(self, env: Env):
        config = env.config
        if isinstance(env, ParticleEnv):
            self.oracle: PushOracle | ParticleOracle | FixtureOracle = ParticleOracle(env.dim, config.particle_goal_radius)
        elif config.kind == "fixtures":
            self.oracle = FixtureOracle(config.fixture_scene, config.control_hz)
        else:
            self.oracle = PushOracle(config.control_hz, env.world.num_targets, config.success_tolerance)
        self.observation_keys = ("state",)
        self.action_low = np.asarray(env.action_low)
        self.action_high = np.asarray(env.action_high)
        self.noise_std = config.oracle_noise * (self.action_high - self.action_low) / 2.0
        self._noise_rng: np.random.Generator | None = None

    def reset(self) -> None:
        self.oracle.reset()
        self._noise_rng = None

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        action = self.oracle.act(obs)
        if np.any(self.noise_std > 0):
            if self._noise_rng is None:
                self._noise_rng = episode_rng(obs)
            action = action + self._noise_rng.normal(0.0, self.noise_std)
        return np.clip(action, self.action_low, self.action_high).astype(np.float32)
