"""controller_node in its own process over real DDS: its 100 Hz ee_target interpolates linearly
from the last commanded target to each new setpoint over the policy period, joint commands
respect the per-cycle step limit, targets stay inside the workspace envelope, it holds when
setpoints stop, and the e-stop freezes it (the logic itself: cell.control, tested by
tests/test_control_*.py; here the wiring)."""
from __future__ import annotations

import sys
import time

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped, Vector3Stamped
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from cell.control import load_controller_config
from cell.paths import share_file
from tests.ros_client import RosClient, steady, wait_for
from tests.ros_processes import running

pytestmark = pytest.mark.ros


def seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def send(client: RosClient, pub, dx: float, dy: float) -> float:
    msg = Vector3Stamped()
    now = client.now()
    msg.header.stamp = now.to_msg()
    msg.vector.x, msg.vector.y = dx, dy
    pub.publish(msg)
    return now.nanoseconds * 1e-9


def settled(targets: list) -> bool:
    return steady(targets, lambda t: (t.pose.position.x, t.pose.position.y))


def test_controller_node_interpolates_clamps_holds_and_estops(tmp_path):
    config = load_controller_config()
    argv = [sys.executable, "-m", "ibc_ros.nodes.controller_node", "--ros-args",
            "--params-file", str(share_file("config", "controller_node.yaml"))]
    with RosClient("controller_test") as client, running(argv, tmp_path / "controller.log"):
        targets = client.collect(PoseStamped, "ee_target", 500)
        commands = client.collect(JointState, "joint_command", 500)
        pub = client.publisher(Vector3Stamped, "setpoint_delta")
        wait_for(lambda: len(targets) >= 20 and pub.get_subscription_count() > 0, 30, "controller output")
        start = np.array([targets[-1].pose.position.x, targets[-1].pose.position.y])
        assert np.allclose(start, config.start_xy, atol=1e-6)

        # One setpoint +5 cm in x: the targets over the next period lie on a straight line,
        # evenly spaced in time, from the start to the new setpoint.
        del targets[:]
        send(client, pub, 0.05, 0.0)
        wait_for(lambda: any(abs(t.pose.position.x - (start[0] + 0.05)) < 1e-9 for t in targets), 30,
                 "target reaching the setpoint")
        wait_for(lambda: settled(targets), 10, "controller holding the setpoint")
        xs = np.array([t.pose.position.x for t in targets])
        ts = np.array([seconds(t.header.stamp) for t in targets])
        ts -= ts[0]  # relative times keep the fit well conditioned
        moving = (xs > start[0] + 1e-9) & (xs < start[0] + 0.05 - 1e-9)
        # ~19 ticks of 100 Hz inside a 0.2 s period on an idle machine; the rate itself is a
        # benchmark (bench/controller_node.py), here only enough points for the line fit.
        assert moving.sum() >= 4
        slope, intercept = np.polyfit(ts[moving], xs[moving], 1)
        assert np.allclose(slope, 0.05 / config.setpoint_period_s, rtol=1e-4)
        # float64 epoch seconds resolve ~0.2 us, i.e. ~0.1 um of motion: a micron bounds the error
        assert np.abs(xs[moving] - (slope * ts[moving] + intercept)).max() < 1e-6
        assert np.allclose([t.pose.position.y for t in targets], start[1], atol=1e-12)
        assert np.allclose([t.pose.position.z for t in targets], config.workspace.height, atol=1e-12)
        # Holds when setpoints stop.
        assert np.allclose(xs[-10:], start[0] + 0.05, atol=1e-12)

        # Push far outside the workspace (y -> -0.5 edge and beyond): the envelope clamps every
        # target, and joint commands never step more than max_joint_step per cycle.
        for _ in range(8):
            send(client, pub, -0.1, -0.1)
            time.sleep(0.2)
        wait_for(lambda: settled(targets), 10, "controller holding at the boundary")
        final = np.array([targets[-1].pose.position.x, targets[-1].pose.position.y])
        (x0, x1), (y0, y1), (r0, r1) = config.workspace.x, config.workspace.y, config.workspace.radius
        for t in targets:
            x, y = t.pose.position.x, t.pose.position.y
            assert x0 - 1e-9 <= x <= x1 + 1e-9 and y0 - 1e-9 <= y <= y1 + 1e-9
            assert r0 - 1e-6 <= np.hypot(x, y) <= r1 + 1e-6
        assert np.isclose(np.hypot(*final), r0, atol=1e-6) or np.isclose(final[0], x0, atol=1e-6) \
            or np.isclose(final[1], y0, atol=1e-6)  # ended on the boundary, not beyond it
        q = np.array([c.position for c in commands])
        assert np.abs(np.diff(q, axis=0)).max() <= config.max_joint_step + 1e-9

        # E-stop: further setpoints are ignored, the target stays put.
        assert client.call(Trigger, "controller/estop", Trigger.Request()).success
        held = np.array([targets[-1].pose.position.x, targets[-1].pose.position.y])
        send(client, pub, 0.05, 0.05)
        time.sleep(0.4)
        assert np.allclose([targets[-1].pose.position.x, targets[-1].pose.position.y], held, atol=1e-12)
        # The e-stop latches: a reset is refused until the operator's explicit release.
        reply = client.call(Trigger, "controller/reset", Trigger.Request())
        assert not reply.success and "e-stop latched" in reply.message
        assert client.call(Trigger, "controller/release_estop", Trigger.Request()).success
        # Reset drives back to the start at return_speed, without a joint jump, then accepts
        # setpoints again.
        reply = client.call(Trigger, "controller/reset", Trigger.Request())
        assert reply.success and "returning to the start" in reply.message
        start_xy = tuple(config.start_xy)
        wait_for(lambda: settled(targets) and np.allclose(
            [targets[-1].pose.position.x, targets[-1].pose.position.y], start_xy, atol=1e-9), 30,
            "the target back at the start")
        q = np.array([c.position for c in commands])
        assert np.abs(np.diff(q, axis=0)).max() <= config.max_joint_step + 1e-9
        send(client, pub, 0.0, 0.05)
        wait_for(lambda: abs(targets[-1].pose.position.y - (config.start_xy[1] + 0.05)) < 1e-9, 30,
                 "setpoint after reset")
