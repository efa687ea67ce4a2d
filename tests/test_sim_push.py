"""PyBullet pushing world and env (sim/block_push.py) with the scripted oracle."""
from __future__ import annotations

import numpy as np
import pytest

from sim.rollout import run_episode
from sim.tasks import OraclePolicy, make_env


@pytest.fixture(scope="module")
def env():
    environment = make_env("push_states")
    yield environment
    environment.close()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_oracle_pushes_the_block_onto_the_target(env, seed):
    rollout = run_episode(env, OraclePolicy(env), seed)
    assert rollout.success, f"seed {seed}: final distance {rollout.final_distance:.3f} m"
    assert rollout.final_distance < env.config.success_tolerance
    assert rollout.steps < env.max_steps


def test_oracle_reaches_both_targets_in_order():
    env = make_env("push_multi_states")
    try:
        policy = OraclePolicy(env)
        for seed in (0, 1):
            obs = env.reset(seed)
            policy.reset()
            assert obs["state"].shape == (13,)
            stages, done, info = [], False, {}
            while not done:
                obs, done, info = env.step(policy.act(obs))
                stages.append(info["stage"])
            assert info["success"] and stages[0] == 0 and stages[-1] == 1
            assert np.all(np.diff(stages) >= 0)
    finally:
        env.close()


def _observations(env, seed: int, actions: np.ndarray) -> list[np.ndarray]:
    observations = [env.reset(seed)["state"]]
    for action in actions:
        observations.append(env.step(action)[0]["state"])
    return observations


def test_same_seed_gives_the_same_episode_bitwise(env):
    actions = np.random.default_rng(7).uniform(-0.04, 0.06, (15, 2))
    first = _observations(env, 11, actions)
    _observations(env, 12, actions)                    # a different episode in between
    again = _observations(env, 11, actions)
    other_env = make_env("push_states")
    try:
        fresh = _observations(other_env, 11, actions)
    finally:
        other_env.close()
    for a, b, c in zip(first, again, fresh):
        assert a.tobytes() == b.tobytes() == c.tobytes()
    assert not np.array_equal(first[0], _observations(env, 12, actions[:0])[0])


def test_state_layout_and_reset_distribution(env):
    scene = env.config.scene
    for seed in range(5):
        state = env.reset(seed)["state"]
        assert state.dtype == np.float32 and state.shape == (10,)
        assert scene.block_x[0] <= state[0] <= scene.block_x[1] and scene.block_y[0] <= state[1] <= scene.block_y[1]
        np.testing.assert_allclose(state[3:5], env.world.controller_config.start_xy, atol=2e-3)   # effector
        np.testing.assert_allclose(state[5:7], env.world.controller_config.start_xy, atol=1e-6)   # setpoint
        assert scene.targets_y[0][0] <= state[8] <= scene.targets_y[0][1]


def test_world_follows_raw_joint_commands_and_reports_status(env):
    world = env.world
    world.reset(3)
    goal = world.start_joints + np.array([0.2, -0.1, 0.1, 0.0, 0.1, 0.3])
    for tick in range(1, 101):                       # a ramp at 100 Hz, within the arm's limits
        assert world.apply_joint_command(world.start_joints + (goal - world.start_joints) * min(tick / 50, 1.0),
                                         tick * 0.01) is None
        world.step(0.01)
    np.testing.assert_allclose(world.joint_positions(), goal, atol=2e-3)
    status = world.task_status()
    assert not status.success and status.distance > env.config.success_tolerance and status.num_targets == 1
    with pytest.raises(ValueError):
        world.apply_joint_command(np.array([0.0, 1.0]), 1.1)


def test_sim_arm_refuses_what_the_driver_refuses_and_holds(env):
    """Issue 27 item 5: a well-formed joint command whose tip lies 16 cm below the working plane
    (before: applied, tip at z = -0.141 m), a 0.3 rad jump in one tick, and an out-of-order stamp
    are refused by the same check as the xArm driver's (cell.control.arm_limits); the arm holds
    its last accepted command and the tip never goes below the limits' lowest height."""
    world = env.world
    world.reset(4)
    limits = world.limits
    into_table = world.start_joints + np.array([0.0, 0.35, 0.0, 0.0, 0.0, 0.0])   # shoulder down
    assert limits.tip(into_table)[2] < -0.05
    jump = world.start_joints + np.array([0.3, 0.0, 0.0, 0.0, 0.0, 0.0])
    t, tips = 0.0, []
    for q in [into_table, jump]:
        t += 0.01
        reason = world.apply_joint_command(q, t)
        assert reason is not None
        for _ in range(20):
            world.step(0.01)
            tips.append(limits.tip(world.joint_positions()))
    assert "below" in world.last_refusal or "rad/s" in world.last_refusal
    assert world.refused == 2
    tips = np.array(tips)
    assert tips[:, 2].min() >= limits.config.tip_box.z[0]
    np.testing.assert_allclose(world.joint_positions(), world.start_joints, atol=2e-3)   # held
    # Steps the controller would make are accepted; a stamp that is not newer is refused.
    small = world.start_joints + np.array([0.02, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert world.apply_joint_command(small, t + 0.01) is None
    assert "not newer" in world.apply_joint_command(small + 0.001, t + 0.01)


def test_camera_renders_d415_sized_frames(env):
    env.reset(0)
    frame = env.world.render_rgb()
    assert frame.shape == (360, 640, 3) and frame.dtype == np.uint8
    assert env.world.render_rgb(320, 180).shape == (180, 320, 3)
    assert frame.std() > 5          # a scene, not a blank image
