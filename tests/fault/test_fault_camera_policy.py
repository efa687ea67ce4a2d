"""Faults upstream of the controller, with real processes over real DDS: a real policy checkpoint
in policy_node, controller_node, frames published by this test as the camera.

1. The camera stops: the policy publishes nothing more (it never acts twice on a frame, nor on one
   older than max_frame_age) and the controller holds its joint command exactly.
2. The policy node is SIGKILLed mid-run: the controller keeps holding; the restarted policy's
   first setpoints move the target on smoothly from where it was held (no jump): every joint
   command step stays within max_joint_step and the Cartesian target within one cycle's travel.
"""
from __future__ import annotations

import math
import os
import signal
import threading
import time

import numpy as np
import pytest
from geometry_msgs.msg import PointStamped, PoseStamped, Vector3Stamped
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState

from cell.control import load_controller_config
from ibc_ros.nodes.common import image_msg
from tests.fault.conftest import node_argv
from tests.ros_client import RosClient, quiet_since, steady, wait_for
from tests.ros_processes import running

pytestmark = pytest.mark.ros


class FramePump:
    """Publishes fresh 320x180 frames at `hz` from a thread while `on` is set (the camera)."""

    def __init__(self, client: RosClient, hz: float) -> None:
        self.client, self.period = client, 1.0 / hz
        self.pub = client.publisher(Image, "camera/image_raw", qos_profile_sensor_data)
        self.on = threading.Event()
        self.last_stamp_ns = 0    # integer ns: a float of ~1.8e9 s rounds (ulp 0.24 us) two ways
        self.sent = 0
        self._stop = threading.Event()
        self._publishing = threading.Lock()   # pause() cannot fall between the check and the stamp
        self._rng = np.random.default_rng(0)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            with self._publishing:
                if self.on.is_set():
                    frame = self._rng.integers(0, 256, (180, 320, 3), dtype=np.uint8)
                    now = self.client.now()
                    self.pub.publish(image_msg(frame, now.to_msg()))
                    self.last_stamp_ns, self.sent = now.nanoseconds, self.sent + 1

    def pause(self) -> int:
        """Stops the frames; returns a time (ns) no sent frame is stamped after."""
        with self._publishing:
            self.on.clear()
            return self.client.now().nanoseconds

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def nanoseconds(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def joints(command: JointState) -> tuple[float, ...]:
    return tuple(command.position)


def position(target: PoseStamped) -> np.ndarray:
    return np.array([target.pose.position.x, target.pose.position.y, target.pose.position.z])


def test_camera_stop_and_policy_restart_hold_the_arm_without_a_jump(tiny_rgb_checkpoint, tmp_path):
    config = load_controller_config()
    policy = node_argv("policy_node", "policy.yaml", f"checkpoint:={tiny_rgb_checkpoint}", "device:=cpu",
                       "torch_threads:=1", "image_width:=320", "image_height:=180")
    controller = node_argv("controller_node", "controller_node.yaml")
    with RosClient("camera_policy_fault") as client, running(controller, tmp_path / "controller.log"):
        commands = client.collect(JointState, "joint_command", 2000)
        targets = client.collect(PoseStamped, "ee_target", 2000)
        setpoints = client.collect(Vector3Stamped, "setpoint_delta")
        accepted = client.collect(PointStamped, "controller/setpoint", 200)  # one per accepted setpoint
        camera = FramePump(client, hz=10.0)
        try:
            with running(policy, tmp_path / "policy_1.log") as first_policy:
                wait_for(lambda: camera.pub.get_subscription_count() > 0 and len(commands) > 10, 120, "nodes up")
                camera.on.set()
                wait_for(lambda: len(setpoints) >= 4, 60, "setpoints from the policy")

                # 1. Camera stops.
                stopped = camera.pause()
                # An inference already under way may still finish (late on a loaded machine).
                quiet_since(setpoints, 1.0, 30, "the policy to stop acting")
                count = len(setpoints)
                wait_for(lambda: steady(commands, joints), 10, "the controller holding")
                held_from = len(commands)
                time.sleep(2.0)
                assert len(setpoints) == count, "the policy acted without a new frame"
                assert all(nanoseconds(s.header.stamp) <= camera.last_stamp_ns for s in setpoints)
                assert nanoseconds(setpoints[-1].header.stamp) <= stopped
                held = np.array(commands[-1].position)
                assert all(np.array_equal(c.position, held) for c in commands[held_from:])

                # 2. Policy killed mid-run (camera streaming again, so it is acting when killed).
                camera.on.set()
                wait_for(lambda: len(setpoints) >= count + 3, 60, "setpoints after the camera is back")
                os.killpg(first_policy.pid, signal.SIGKILL)
                first_policy.wait(timeout=10)
            quiet_since(setpoints, 0.5, 30, "setpoints in flight from the killed policy")
            wait_for(lambda: steady(commands, joints), 10, "the controller holding")
            killed_count, held_from = len(setpoints), len(commands)
            time.sleep(1.5)
            assert len(setpoints) == killed_count
            held = np.array(commands[-1].position)
            assert all(np.array_equal(c.position, held) for c in commands[held_from:])
            accepted_before = len(accepted)

            with running(policy, tmp_path / "policy_2.log"):
                wait_for(lambda: len(setpoints) >= killed_count + 3, 120, "setpoints from the restarted policy")
                wait_for(lambda: len(accepted) >= accepted_before + 3, 20, "the controller accepting them")
                time.sleep(config.setpoint_period_s + 0.1)
            camera.on.clear()
        finally:
            camera.close()

        commands, targets = list(commands), list(targets)  # stop the lists growing under the checks
        # No jump anywhere, in particular across the restart.
        q = np.array([c.position for c in commands])
        assert np.abs(np.diff(q, axis=0)).max() <= config.max_joint_step + 1e-9
        # The target moves at most at full setpoint speed (a late tick covers more time, so the
        # bound scales with the stamps).
        xyz = np.array([position(t) for t in targets])
        stamps = np.array([seconds(t.header.stamp) for t in targets])
        top_speed = math.hypot(config.max_setpoint_step, config.max_setpoint_step) / config.setpoint_period_s
        travel = np.linalg.norm(np.diff(xyz, axis=0), axis=1)
        assert np.all(travel <= top_speed * np.diff(stamps) + 1e-9)
