"""N-D particle environment and oracle (paper appendix C.5)."""
from __future__ import annotations

import numpy as np
import pytest

from ibc_core.config_io import ConfigError
from sim.rollout import run_episode
from sim.tasks import OraclePolicy, make_env


@pytest.mark.parametrize("dim", [1, 2, 8, 16, 32])
def test_oracle_reaches_both_goals(dim):
    env = make_env(f"particle_{dim}d")
    policy = OraclePolicy(env)
    results = [run_episode(env, policy, seed) for seed in range(20)]
    assert all(r.success for r in results), [r.seed for r in results if not r.success]
    assert env.observation()["state"].shape == (4 * dim,)


def test_pd_dynamics_converge_to_the_setpoint_and_seeds_repeat():
    env = make_env("particle_3d")
    env.reset(4)
    setpoint = np.array([0.2, 0.8, 0.5])
    for _ in range(60):
        obs, _, _ = env.step(setpoint)
    np.testing.assert_allclose(obs["state"][:3], setpoint, atol=1e-3)
    np.testing.assert_allclose(obs["state"][3:6], 0.0, atol=1e-2)
    assert env.reset(9)["state"].tobytes() == env.reset(9)["state"].tobytes()
    with pytest.raises(ValueError):
        env.step(np.array([0.1, 0.2]))


def test_unknown_task_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown task"):
        make_env("particle_two_d")
