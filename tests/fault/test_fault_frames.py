"""Camera frames that must not drive the arm, into a real policy_node process over real DDS (tiny
real checkpoint): a frame stamped an hour ahead is refused with a log line and the policy keeps
acting on the good frames after it; where the tolerance lets such a frame through, policy/reset
recovers; a 1x1 frame (any size but the configured camera's) is refused with the reason.
Which frame a setpoint came from is read from its stamp (= the frame's stamp)."""
from __future__ import annotations

import re
import time

import numpy as np
import pytest
from geometry_msgs.msg import Vector3Stamped
from rclpy.duration import Duration
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from cell.frame_gate import FrameGate
from ibc_ros.nodes.common import image_msg
from tests.fault.conftest import node_argv
from tests.fault.test_fault_bad_input import publish_until_logged
from tests.ros_client import RosClient, wait_for
from tests.ros_processes import running

pytestmark = pytest.mark.ros
HOUR = Duration(seconds=3600)


def stamp_key(stamp) -> tuple[int, int]:
    return stamp.sec, stamp.nanosec


def frame(client: RosClient, ahead: Duration = Duration(), size: tuple[int, int] = (320, 180)) -> Image:
    width, height = size
    return image_msg(np.full((height, width, 3), 90, np.uint8), (client.now() + ahead).to_msg())


def publish_until_acted_on(client: RosClient, images, setpoints: list, what: str,
                        ahead: Duration = Duration()) -> set:
    """Publish 320x180 frames stamped ``ahead`` of now until a setpoint carries one of their
    stamps; returns the stamps sent."""
    sent: set = set()

    def answered() -> bool:
        if any(stamp_key(s.header.stamp) in sent for s in setpoints):
            return True
        msg = frame(client, ahead)
        sent.add(stamp_key(msg.header.stamp))
        images.publish(msg)
        return False
    wait_for(answered, 60, what, period=0.3)
    return sent


def policy_argv(checkpoint, *parameters: str) -> list[str]:
    return node_argv("policy_node", "policy.yaml", f"checkpoint:={checkpoint}", "device:=cpu", "torch_threads:=1",
                     "image_width:=320", "image_height:=180", *parameters)


def test_future_frames_and_wrong_sizes_are_refused_and_the_policy_keeps_acting(tiny_rgb_checkpoint, tmp_path):
    log = tmp_path / "policy.log"
    with RosClient("frame_fault") as client, running(policy_argv(tiny_rgb_checkpoint), log) as proc:
        setpoints = client.collect(Vector3Stamped, "setpoint_delta")
        images = client.publisher(Image, "camera/image_raw", qos_profile_sensor_data)
        wait_for(lambda: images.get_subscription_count() > 0 and client.publishers_matched("setpoint_delta") > 0,
                 120, "policy node up")
        publish_until_acted_on(client, images, setpoints, "a setpoint from a good frame")

        # A frame stamped 1 h ahead: logged, never acted on (publish_until_logged restamps it
        # an hour ahead each time it resends)...
        future = frame(client, HOUR)
        future_stamps = set()

        def resend_future() -> bool:
            if "in the future" in log.read_text():
                return True
            future.header.stamp = (client.now() + HOUR).to_msg()
            future_stamps.add(stamp_key(future.header.stamp))
            images.publish(future)
            return False
        wait_for(resend_future, 30, "the future frame's log line", period=0.5)
        # ...and the good frames after it are acted on.
        publish_until_acted_on(client, images, setpoints, "a setpoint from a good frame after the future one")
        assert not future_stamps & {stamp_key(s.header.stamp) for s in setpoints}

        # A 1x1 rgb8 frame (well formed, wrong size): refused on arrival, with the reason.
        tiny = frame(client, size=(1, 1))
        publish_until_logged(client, images, tiny, log, "image size 1x1 does not match the camera configuration 320x180")
        publish_until_acted_on(client, images, setpoints, "a setpoint from a good frame after the 1x1 one")
        assert proc.poll() is None
    assert re.search(r"frame stamped 3599\.\d+ s in the future \(tolerance 0\.1 s\): not acting on it",
                     log.read_text())


def test_policy_reset_recovers_after_acting_on_a_future_frame(tiny_rgb_checkpoint, tmp_path):
    """With a tolerance wide enough to act on the 1 h-ahead frame, every later good frame looks
    already seen (older than the last one acted on): policy/reset forgets it."""
    log = tmp_path / "policy.log"
    with RosClient("frame_reset") as client, running(policy_argv(tiny_rgb_checkpoint, "max_frame_lead:=7200.0"),
                                                     log):
        setpoints = client.collect(Vector3Stamped, "setpoint_delta")
        images = client.publisher(Image, "camera/image_raw", qos_profile_sensor_data)
        wait_for(lambda: images.get_subscription_count() > 0 and client.publishers_matched("setpoint_delta") > 0,
                 120, "policy node up")
        publish_until_acted_on(client, images, setpoints, "a setpoint from a good frame")
        future = publish_until_acted_on(client, images, setpoints, "a setpoint from the future frame", HOUR)
        count = len(setpoints)
        for _ in range(10):   # good frames: not newer than the future one, so never acted on
            images.publish(frame(client))
            time.sleep(0.1)
        reply = client.call(Trigger, "policy/reset", Trigger.Request())
        assert reply.success
        publish_until_acted_on(client, images, setpoints, "a setpoint from a good frame after policy/reset")
        assert all(stamp_key(s.header.stamp) not in future for s in setpoints[count:])


def test_frame_gate_rules():
    ns = lambda seconds: round(seconds * 1_000_000_000)  # noqa: E731  (stamps are integer nanoseconds)
    gate = FrameGate(max_age=0.5, max_lead=0.1)
    assert gate.take(ns(100.0), ns(100.05))[0] == "act"
    assert gate.take(ns(100.0), ns(100.1))[0] == "seen"
    verdict, reason = gate.take(ns(3700.0), ns(100.2))
    assert verdict == "from_future" and "3599.800 s in the future" in reason
    assert gate.take(ns(100.15), ns(100.2))[0] == "act"          # the future frame blocked nothing
    assert gate.take(ns(100.3), ns(100.25))[0] == "act"          # 50 ms ahead: within the tolerance
    assert gate.take(ns(99.0), ns(100.3))[0] == "seen"
    assert gate.take(ns(100.4), ns(101.0))[0] == "too_old"
    wide = FrameGate(max_age=0.5, max_lead=7200.0)
    assert wide.take(ns(3700.0), ns(100.0))[0] == "act"
    assert wide.take(ns(100.1), ns(100.1))[0] == "seen"          # blocked by the future stamp...
    wide.reset(ns(100.2))
    assert wide.take(ns(100.25), ns(100.3))[0] == "act"          # ...until a reset
    assert wide.take(ns(100.1), ns(100.3))[0] == "seen"          # from before the reset
    # A frame stamped exactly at the reset belongs to the new episode (the float clock's
    # round-trip error once put such stamps before their own reset: issue 25 item 1).
    exact = FrameGate(max_age=0.5, max_lead=0.1)
    exact.reset(1_640_000_000)
    assert exact.take(1_640_000_000, 1_640_000_000)[0] == "act"
    with pytest.raises(ValueError):
        FrameGate(max_age=0.5, max_lead=float("nan"))
