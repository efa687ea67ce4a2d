"""Bad input reaching running nodes (real processes, real DDS): every kind is rejected with a
clear logged error, never moves the arm, and the node keeps working for the next good message.

- policy_node: images with another encoding, a header that disagrees with the data, empty data;
- controller_node: NaN / inf setpoint deltas (out-of-bounds ones are clamped: test_fault_envelope);
- xarm_driver_node (the real xArm SDK against the loopback server cell/hardware/xarm_loopback.py):
  JointState with missing / repeated names, names and positions of different lengths, NaN.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import Vector3Stamped
from rclpy.publisher import Publisher
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState

from cell.hardware import xarm_loopback as lb
from ibc_ros.nodes.common import image_msg
from tests.fault.conftest import node_argv
from tests.ros_client import RosClient, wait_for
from tests.ros_processes import running
from tests.test_driver_xarm_loopback import START, loopback_address

pytestmark = pytest.mark.ros
NAMES = [f"joint{i}" for i in range(1, 7)]


def setpoint(client: RosClient, dx: float, dy: float) -> Vector3Stamped:
    msg = Vector3Stamped()
    msg.header.stamp = client.now().to_msg()
    msg.vector.x, msg.vector.y = dx, dy
    return msg


def bad_images(client: RosClient) -> dict[str, Image]:
    good = image_msg(np.zeros((180, 320, 3), np.uint8), client.now().to_msg())
    mono = image_msg(np.zeros((180, 320, 3), np.uint8), client.now().to_msg())
    mono.encoding = "mono8"
    short = image_msg(np.zeros((180, 320, 3), np.uint8), client.now().to_msg())
    short.height = 360  # header claims twice the rows the data holds
    empty = Image(encoding="rgb8")
    empty.header.stamp = client.now().to_msg()
    return {"unsupported image encoding 'mono8'": mono, "does not match its header": short,
            "empty image": empty, "": good}


def publish_until_logged(client: RosClient, publisher: Publisher, msg: Image, log: Path, text: str, timeout: float = 20.0) -> None:
    """Send msg every 0.5 s until `text` is in the node's log. Camera frames go best effort
    (sensor-data QoS), which may drop one: the first frame after discovery is lost when this
    publisher already sees the subscriber but the subscriber has not matched it yet."""
    def logged_or_resent() -> bool:
        if text in log.read_text():
            return True
        msg.header.stamp = client.now().to_msg()
        publisher.publish(msg)
        return False
    wait_for(logged_or_resent, timeout, f"{log.name}: {text}", period=0.5)


def test_policy_and_controller_reject_bad_images_and_non_finite_setpoints(tiny_rgb_checkpoint, tmp_path):
    policy_log, controller_log = tmp_path / "policy.log", tmp_path / "controller.log"
    policy = node_argv("policy_node", "policy.yaml", f"checkpoint:={tiny_rgb_checkpoint}", "device:=cpu",
                       "torch_threads:=1", "image_width:=320", "image_height:=180")
    # The controller listens on its own topic here so that the policy's setpoints stay apart.
    controller = node_argv("controller_node", "controller_node.yaml") + ["-r", "setpoint_delta:=test_setpoint"]
    with RosClient("bad_input_test") as client, running(policy, policy_log) as policy_proc, \
            running(controller, controller_log) as controller_proc:
        setpoints = client.collect(Vector3Stamped, "setpoint_delta")
        commands = client.collect(JointState, "joint_command", 1000)
        images = client.publisher(Image, "camera/image_raw", qos_profile_sensor_data)
        to_controller = client.publisher(Vector3Stamped, "test_setpoint")
        wait_for(lambda: images.get_subscription_count() > 0 and to_controller.get_subscription_count() > 0
                 and len(commands) > 10, 120, "policy and controller up")

        # Bad frames: each is logged and never acted on.
        for reason, msg in bad_images(client).items():
            if not reason:
                continue
            publish_until_logged(client, images, msg, policy_log, reason)
            time.sleep(2.1)  # past the error log's 2 s throttle
        assert setpoints == [] and policy_proc.poll() is None

        # Non-finite setpoints: logged, dropped; the joint command does not change.
        held = np.array(commands[-1].position)
        for dx, dy in ((math.nan, 0.0), (0.0, math.inf), (-math.inf, math.nan)):
            to_controller.publish(setpoint(client, dx, dy))
        wait_for(lambda: "setpoint rejected" in controller_log.read_text(), 20, "controller log")
        count = len(commands)
        wait_for(lambda: len(commands) > count + 30, 20, "joint commands after the bad setpoints")
        assert controller_proc.poll() is None
        assert all(np.array_equal(c.position, held) for c in commands[count:])

        # Both keep working: a good frame gives a setpoint, a good setpoint moves the target.
        good = bad_images(client)[""]
        good.header.stamp = client.now().to_msg()
        images.publish(good)
        wait_for(lambda: len(setpoints) == 1, 30, "setpoint from a good frame")
        assert np.all(np.isfinite([setpoints[0].vector.x, setpoints[0].vector.y]))
        to_controller.publish(setpoint(client, 0.02, 0.0))
        wait_for(lambda: not np.allclose(commands[-1].position, held), 20, "motion after a good setpoint")


def test_driver_rejects_malformed_joint_commands_and_sends_nothing(tmp_path):
    host, log = loopback_address(), tmp_path / "driver.log"
    driver = node_argv("xarm_driver_node", "xarm_driver.yaml", f"robot_ip:={host}", "command_port:=5502",
                       "command_timeout:=0.5")
    bad = {
        "missing": JointState(name=NAMES[:5], position=START[:5].tolist()),
        "5 joint names but 6 positions": JointState(name=NAMES[:5], position=START.tolist()),
        "repeated joint names": JointState(name=NAMES[:5] + ["joint1"], position=START.tolist()),
        "non-finite joint positions": JointState(name=NAMES, position=[math.nan] + START[1:].tolist()),
        "unnamed joint positions must be 6 values": JointState(position=START[:4].tolist()),
    }
    with lb.XArmLoopbackServer(lb.LoopbackConfig(host=host, command_port=5502)) as arm, \
            RosClient("driver_bad_input") as client, running(driver, log) as proc:
        joint_states = client.collect(JointState, "joint_states")
        pub = client.publisher(JointState, "joint_command")
        wait_for(lambda: pub.get_subscription_count() > 0 and len(joint_states) > 5, 60, "driver up")
        for reason, msg in bad.items():
            msg.header.stamp = client.now().to_msg()
            pub.publish(msg)
            # throttled error log: one bad message per reason, each waited for
            wait_for(lambda: reason in log.read_text(), 20, f"driver log: {reason}")
            time.sleep(1.1)  # past the 1 s log throttle
        assert arm.servo_commands == [] and lb.MOVE_JOINT not in arm.command_log  # the arm never moved
        # Still serving: a good command is approached in position mode, then streamed.
        good = JointState(name=NAMES, position=START.tolist())
        for _ in range(300):
            good.header.stamp = client.now().to_msg()
            pub.publish(good)
            time.sleep(0.01)
            if arm.servo_commands:
                break
        wait_for(lambda: lb.MOVE_JOINT in arm.command_log, 30, "move to the first good command")
        assert proc.poll() is None
