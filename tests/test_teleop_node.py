"""teleop_node + recorder_node over real DDS, driven without a display through teleop/pointer
and teleop/key: setpoints are the clamped steps towards the pointer, stamped with the camera
frame; key presses record episodes; the converted dataset holds exactly the sent setpoints.
Then ibc-replay plays the recorded bag back and the subscriber gets the same bytes in order."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import PointStamped, Vector3Stamped
from sensor_msgs.msg import Image
from std_msgs.msg import String

from ibc_core.data.episodes import iter_episodes
from ibc_core.data.preprocess import ImageSpec
from cell.control.config import load_controller_config
from cell.control.envelope import SafetyEnvelope
from cell.recording.bag_io import BagReader
from cell.recording.bag_to_dataset import convert_bags
from tests.ros_client import RosClient, quiet_since, wait_for
from tests.ros_processes import running

pytestmark = pytest.mark.ros
BIN = Path(sys.executable).parent


def frame_msg(client: RosClient, value: int) -> Image:
    msg = Image(height=18, width=32, encoding="rgb8", step=96, data=bytes([value % 256]) * (18 * 32 * 3))
    msg.header.stamp = client.now().to_msg()
    return msg


def test_pointer_and_keys_record_exactly_the_sent_setpoints(tmp_path):
    out = tmp_path / "demos"
    recorder_args = [str(BIN / "recorder_node"), "--ros-args", "-p", f"output_dir:={out}",
                     "-p", "flush_interval_s:=0.2"]
    teleop_args = [str(BIN / "teleop_node"), "--ros-args", "-p", "display:=none", "-p", "pointer_timeout_s:=0.5"]
    with running(recorder_args, tmp_path / "recorder.log"), running(teleop_args, tmp_path / "teleop.log"), \
            RosClient("teleop_test") as client:
        images = client.publisher(Image, "camera/image_raw")
        pointer = client.publisher(PointStamped, "teleop/pointer")
        keys = client.publisher(String, "teleop/key")
        sent = client.collect(Vector3Stamped, "setpoint_delta")
        events = client.collect(String, "recorder/events")
        wait_for(lambda: pointer.get_subscription_count() > 0 and keys.get_subscription_count() > 0
                 and images.get_subscription_count() >= 2, 30, "teleop and recorder subscriptions")
        frames: dict[int, int] = {}  # stamp ns -> frame value

        def stream(seconds: float, target: tuple[float, float] | None) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                msg = frame_msg(client, len(frames))
                frames[msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec] = len(frames) % 256
                images.publish(msg)
                if target is not None:
                    point = PointStamped()
                    point.header.frame_id = "table"
                    point.point.x, point.point.y = target
                    pointer.publish(point)
                time.sleep(1 / 30)

        stream(0.5, None)
        assert sent == [], "no setpoints while the pointer is idle"
        config = load_controller_config()
        start = np.array(config.start_xy)
        target = start + [0.25, 0.13]
        deadline = time.monotonic() + 20
        while not events and time.monotonic() < deadline:  # until teleop has discovered the service
            keys.publish(String(data="r"))
            time.sleep(1.0)
        assert len(events) == 1, "recorder never started"
        stream(1.6, tuple(target))              # engaged: steps towards the target
        stream(1.0, None)                       # released after the pointer timeout
        quiet_since(sent, 1.5, 20, "teleop to stop publishing once the pointer went idle")
        count = len(sent)
        keys.publish(String(data="success"))
        keys.publish(String(data="s"))
        wait_for(lambda: len(events) == 3, 10, "success + stop events")
        assert len(sent) == count

    # The steps: clamped to max_setpoint_step, reaching the target, then zero steps until released.
    deltas = np.array([[m.vector.x, m.vector.y] for m in sent])
    limit = SafetyEnvelope(config).max_setpoint_step
    assert np.all(np.abs(deltas) <= limit + 1e-12)
    np.testing.assert_allclose(deltas[:3], [[limit, limit], [limit, 0.03], [0.05, 0.0]], atol=1e-9)
    np.testing.assert_allclose(deltas.sum(axis=0), target - start, atol=1e-9)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in sent]
    assert all(s in frames for s in stamps), "every setpoint carries a camera frame's stamp"
    # Built by the policy's own function (ibc_ros.nodes.common.setpoint_delta_msg): the arm base frame.
    assert {m.header.frame_id for m in sent} == {"link_base"}

    report = convert_bags([out], tmp_path / "data", ImageSpec(9, 16), "push_pixels_real", config)
    (episode,) = list(iter_episodes(tmp_path / "data"))
    assert report.outcomes == {"success": 1} and episode.success
    np.testing.assert_array_equal(episode.actions, deltas.astype(np.float32))
    assert episode.observations["rgb"][:, 0, 0, 0].tolist() == [frames[s] for s in stamps]

    # Replay the recorded setpoints and images: same bytes, same order.
    bag = out / "episode_000000"
    with BagReader(bag) as reader:
        recorded = [m.data for m in reader.messages(["/setpoint_delta"])]
    with RosClient("replay_listener") as listener:
        from rclpy.qos import QoSProfile
        raw: list[bytes] = []
        listener.node.create_subscription(Vector3Stamped, "setpoint_delta", raw.append, QoSProfile(depth=100),
                                          raw=True)
        result = subprocess.run([str(BIN / "ibc-replay"), str(bag), "--topics", "setpoint_delta",
                                 "--rate", "4", "--wait-subscribers", "20"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        wait_for(lambda: len(raw) == len(recorded), 10, "replayed setpoints")
    assert raw == recorded
