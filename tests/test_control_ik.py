"""XArmIK and CartesianController (cell/control) on the real xarm6_pusher.urdf in PyBullet."""
from __future__ import annotations

import numpy as np
import pytest

from cell.control import CartesianController, EStopLatched, IKError, XArmIK, load_controller_config


@pytest.fixture(scope="module")
def config():
    return load_controller_config()


@pytest.fixture(scope="module")
def ik(config):
    solver = XArmIK(config.ik)
    yield solver
    solver.close()


def test_ik_reaches_targets_across_the_workspace(ik, config):
    rest = np.array(config.ik.rest_joints)
    height = config.workspace.height
    for x in np.linspace(0.2, 0.6, 5):
        for y in np.linspace(-0.45, 0.45, 7):
            if not 0.2 <= np.hypot(x, y) <= 0.65:
                continue
            target = np.array([x, y, height])
            q = ik.solve(target, seed=rest)
            assert np.linalg.norm(ik.forward(q) - target) < 1e-4, target
            assert np.all(q >= ik.lower) and np.all(q <= ik.upper)


def test_ik_reports_unreachable_targets(ik, config):
    with pytest.raises(IKError, match="residual"):
        ik.solve(np.array([1.2, 0.0, config.workspace.height]), seed=np.array(config.ik.rest_joints))


def test_controller_streams_joint_commands_that_track_the_interpolated_target(config, ik):
    controller = CartesianController(config, ik=ik)
    controller.reset()
    period = config.period_s
    ticks = round(config.setpoint_period_s / period)
    t = 0.0
    for _ in range(10):
        goal = controller.on_setpoint_delta(np.array([0.01, 0.02]), t)
        previous = controller.joint_command
        for _ in range(ticks):
            t += period
            q, target = controller.step(t)
            assert np.all(np.abs(q - previous) <= config.max_joint_step + 1e-12)
            assert np.linalg.norm(ik.forward(q) - target) < 1e-3
            previous = q
        np.testing.assert_allclose(target, goal, atol=1e-9)
    held = controller.joint_command
    for _ in range(30):                            # setpoints stop: hold position
        t += period
        q, target = controller.step(t)
    np.testing.assert_allclose(q, held, atol=1e-6)
    np.testing.assert_allclose(target, goal)
    assert controller.ik_failures == 0


def test_controller_rejects_bad_setpoints_and_estop_holds(config, ik):
    controller = CartesianController(config, ik=ik)
    controller.reset([0.4, 0.0])
    before = controller.setpoint
    with pytest.raises(ValueError):
        controller.on_setpoint_delta(np.array([np.nan, 0.0]), 0.0)
    np.testing.assert_allclose(controller.setpoint, before)
    controller.on_setpoint_delta(np.array([0.05, 0.0]), 0.0)
    for tick in range(1, 11):                      # 100 Hz up to t = 0.1 s
        controller.step(tick * config.period_s)
    controller.estop(0.1)
    stopped_at = controller.setpoint
    assert stopped_at[0] == pytest.approx(0.425)
    controller.on_setpoint_delta(np.array([0.05, 0.0]), 0.2)
    _, target = controller.step(0.5)
    np.testing.assert_allclose(target, stopped_at)
    # The e-stop latches: a reset is refused until the operator's explicit release.
    with pytest.raises(EStopLatched):
        controller.reset([0.4, 0.0])
    with pytest.raises(EStopLatched):
        controller.return_to_start(0.6, 0.1)
    assert controller.estopped
    controller.release_estop(0.6)
    controller.reset([0.4, 0.0])
    assert not controller.estopped


def test_setpoints_are_clamped_to_the_workspace(config, ik):
    controller = CartesianController(config, ik=ik)
    controller.reset()
    t = 0.0
    for _ in range(40):                           # push far outside the box in -y
        controller.on_setpoint_delta(np.array([0.0, -0.1]), t)
        t += config.setpoint_period_s
    assert controller.setpoint[1] == pytest.approx(config.workspace.y[0])
    for _ in range(100):                          # 1 s at 100 Hz (the tip speed limit paces it)
        t += config.period_s
        _, target = controller.step(t)
    assert target[1] == pytest.approx(config.workspace.y[0])
    assert controller.ik_failures == 0


def test_return_to_start_drives_back_in_a_straight_line_without_a_joint_jump(config, ik):
    """controller/reset on hardware: from an e-stop far from the start, a straight line back at
    the return speed, every joint step within the limit, setpoints ignored until it arrives."""
    controller = CartesianController(config, ik=ik)
    controller.reset()
    period, t = config.period_s, 0.0
    for _ in range(6):                              # 0.6 m of setpoints towards +x, +y
        controller.on_setpoint_delta(np.array([0.1, 0.1]), t)
        for _ in range(round(config.setpoint_period_s / period)):
            t += period
            controller.step(t)
    controller.estop(t)
    controller.release_estop(t)                     # the operator's release, then the reset
    away = controller.ee_target
    start = controller.envelope.clamp_target(config.start_xy)
    speed = 0.1
    arrival = controller.return_to_start(t, speed)
    assert not controller.estopped
    assert arrival - t == pytest.approx(np.linalg.norm(start - away) / speed)
    assert np.array_equal(controller.on_setpoint_delta(np.array([0.1, 0.0]), t + 0.1), start)  # ignored
    previous, targets = controller.joint_command, []
    while t < arrival + 0.5:
        t += period
        q, target = controller.step(t)
        assert np.all(np.abs(q - previous) <= config.max_joint_step + 1e-12)
        previous = q
        targets.append(target)
    targets = np.array(targets)
    direction = (start - away) / np.linalg.norm(start - away)
    offsets = targets - away
    off_line = offsets - np.outer(offsets @ direction, direction)
    assert np.abs(off_line).max() < 1e-9                                    # on the segment
    assert np.linalg.norm(np.diff(targets, axis=0), axis=1).max() <= speed * period + 1e-9
    np.testing.assert_allclose(targets[-1], start, atol=1e-12)
    assert not controller.returning(t)
    goal = controller.on_setpoint_delta(np.array([0.05, 0.0]), t)    # accepted again
    np.testing.assert_allclose(goal[:2], start[:2] + [0.05, 0.0])
