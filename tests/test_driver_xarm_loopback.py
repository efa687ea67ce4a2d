"""The xArm driver logic (cell/hardware/xarm_driver.py) through the REAL xArm-Python-SDK against
the loopback server cell/hardware/xarm_loopback.py, which speaks the SDK's TCP protocol
(command port + real-time report port 30003). No arm, no ROS here; the ROS node is tested in
test_ros_xarm_driver.py against the same server."""
from __future__ import annotations

import os
import random
import time

import numpy as np
import pytest

from cell.hardware import xarm_loopback as lb
from cell.hardware.xarm_driver import Phase, XArmDriver, XArmDriverConfig
from tests.ros_client import wait_for

START = np.array([0.05, -0.25, -0.55, 0.0, 0.8, 0.05])


def loopback_address() -> str:
    """A private 127.x.y.z per test: the SDK's report ports are fixed (30001-30003), so parallel
    runs are kept apart by address instead of port."""
    rng = random.Random(os.getpid() * 7919 + time.monotonic_ns())
    return f"127.{rng.randint(1, 254)}.{rng.randint(1, 254)}.{rng.randint(1, 254)}"


@pytest.fixture
def arm_server():
    config = lb.LoopbackConfig(host=loopback_address(), command_port=5502)
    with lb.XArmLoopbackServer(config) as server:
        yield server


def make_driver(server, **overrides) -> XArmDriver:
    settings = {"command_timeout": 0.5, **overrides}
    config = XArmDriverConfig(robot_ip=server.config.host, command_port=server.ports["command"], **settings)
    return XArmDriver(config)


def test_driver_moves_to_start_streams_refuses_stale_and_recovers(arm_server):
    driver = make_driver(arm_server)
    driver.connect()
    try:
        # Safety settings reached the controller before any motion.
        settings = arm_server.snapshot().settings
        assert settings["collision_sensitivity"] == 3 and settings["reduced_mode"] == 1
        assert settings["tcp_boundary"] == [750, 100, 400, -400, 400, 0]
        assert driver.status().phase == Phase.WAITING_FOR_START

        # The first command is the start pose: reached in position mode (mode 0), then servo mode.
        driver.submit(START, age_s=0.0)
        wait_for(lambda: driver.status().phase == Phase.STREAMING, 20, "streaming after the start move")
        assert lb.MOVE_JOINT in arm_server.command_log
        assert np.allclose(arm_server.snapshot().joints[:6], START, atol=1e-5)
        assert arm_server.snapshot().mode == 1
        assert arm_server.servo_commands == []  # the start pose never went out as a servo jump

        # Streaming: a ramp of small steps arrives in order, each sent once.
        ramp = [START + np.array([0.002 * i, 0, 0, 0, 0, 0]) for i in range(1, 21)]
        for q in ramp:
            assert driver.submit(q, age_s=0.0)
            wait_for(lambda q=q: arm_server.servo_commands and
                     np.allclose(arm_server.servo_commands[-1].joints, q, atol=1e-5), 5, "servo target")
        sent = np.array([r.joints for r in arm_server.servo_commands])
        assert len(sent) == 20 and np.allclose(sent, ramp, atol=1e-5)
        wait_for(lambda: np.allclose(driver.joint_positions(), ramp[-1], atol=1e-5), 5, "report of the new pose")

        # Stale: a command older than command_timeout is refused, nothing reaches the arm.
        assert not driver.submit(ramp[-1] + 0.001, age_s=0.6)
        # A jump beyond the joint velocity limit is refused as well.
        driver.submit(ramp[-1] + 0.5, age_s=0.0)
        wait_for(lambda: driver.status().refused_limits == 1, 5, "jump refusal")
        assert len(arm_server.servo_commands) == 20 and driver.status().refused_stale == 1

        # An error (C31 collision) stops streaming; commands are not sent; recover resumes.
        arm_server.inject_error(31)
        wait_for(lambda: driver.status().phase == Phase.FAULT, 5, "fault")
        assert driver.status().error_code == 31 and "C31" in driver.status().message
        driver.submit(ramp[-1], age_s=0.0)
        time.sleep(0.2)
        assert len(arm_server.servo_commands) == 20
        status = driver.recover()
        assert status.phase == Phase.WAITING_FOR_START and status.error_code == 0
        assert arm_server.snapshot().error_code == 0
        # The first command after a recovery is approached in position mode, then servo again.
        moves = arm_server.command_log.count(lb.MOVE_JOINT)
        driver.submit(ramp[-1] + 0.02, age_s=0.0)
        wait_for(lambda: driver.status().phase == Phase.STREAMING, 10, "streaming after recover")
        assert arm_server.command_log.count(lb.MOVE_JOINT) == moves + 1 and arm_server.snapshot().mode == 1
        assert len(arm_server.servo_commands) == 20
        driver.submit(ramp[-1] + 0.022, age_s=0.0)
        wait_for(lambda: len(arm_server.servo_commands) == 21, 5, "servo streaming after recover")
    finally:
        driver.close()


def test_stalled_sdk_call_does_not_block_submit_and_old_targets_are_dropped(arm_server):
    driver = make_driver(arm_server, start_joints=tuple(START), command_timeout=0.1)
    driver.connect()  # configured start pose: moves there during connect
    try:
        assert driver.status().phase == Phase.STREAMING
        arm_server.stall_s = 0.3  # every reply now takes 300 ms, like the reported SDK stalls
        # 0.3 mrad per target: even the newest after a stall is within the arm's limits (a
        # bigger catch-up jump would rightly be refused, arm_limits.max_tip_speed)
        targets = [START + 0.0003 * i for i in range(1, 31)]
        for q in targets:  # 30 targets at ~100 Hz while the arm link is stalled
            driver.submit(q, age_s=0.0)
            time.sleep(0.01)
        # All 30 submit() calls returned while the SDK had made at most 2 (stalled) requests:
        # the caller (the ROS callback / controller side) never waits on the arm.
        calls_during_submits = len(arm_server.servo_commands)
        assert calls_during_submits <= 2
        arm_server.stall_s = 0.0
        wait_for(lambda: driver.status().sent + driver.status().refused_stale >= 2, 5, "stalled sends")
        time.sleep(0.5)
        status = driver.status()
        received = [r.joints for r in arm_server.servo_commands]
        indices = [int(np.argmin([np.abs(np.subtract(q, t)).max() for t in targets])) for q in received]
        # The thread skipped the targets that arrived meanwhile instead of replaying a backlog:
        # only a strictly newer target is ever sent, each at most once.
        assert len(received) < 10 and indices == sorted(set(indices))
        assert all(np.allclose(received[k], targets[i], atol=1e-5) for k, i in enumerate(indices))
        assert status.max_call_s >= 0.3
    finally:
        driver.close()


def test_dry_run_connects_but_never_moves_or_configures(arm_server):
    sent: list = []
    # Staleness is tested above; here every target must be handled (a loaded machine once took
    # the stream thread > 0.5 s to pick one up, and it was rightly dropped as stale).
    config = XArmDriverConfig(robot_ip=arm_server.config.host, command_port=arm_server.ports["command"],
                              dry_run=True, command_timeout=5.0)
    driver = XArmDriver(config, on_command=sent.append)
    driver.connect()
    try:
        assert driver.status().phase == Phase.DRY_RUN
        initial = np.array(lb.LoopbackConfig().initial_joints)
        # Before the first report the SDK holds zeros: the driver must report no pose, not those
        # (taken as the jump reference they once made it refuse every target).
        first = driver.joint_positions()
        assert first is None or np.allclose(first, initial, atol=1e-6)
        wait_for(lambda: driver.joint_positions() is not None, 5, "joint report")
        for i in range(5):
            driver.submit(initial + 0.01 * i, age_s=0.0)
            wait_for(lambda i=i: len(sent) == i + 1, 5, "dry-run command")
        assert np.allclose(sent[-1], initial + 0.04)
        motion_or_settings = {lb.MOTION_EN, lb.SET_MODE, lb.SET_STATE, lb.MOVE_JOINT, lb.MOVE_SERVOJ,
                              lb.SET_COLLIS_SENS, lb.SET_REDUCED_MODE, lb.SET_LIMIT_XYZ, lb.SET_REDUCED_TRSV}
        assert not motion_or_settings & set(arm_server.command_log)
        assert arm_server.servo_commands == []
        assert np.allclose(driver.joint_positions(), initial, atol=1e-6)
    finally:
        driver.close()
