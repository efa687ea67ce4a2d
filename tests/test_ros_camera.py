"""camera_node in real processes over real DDS. Image source: a RealSense recording made with
pyrealsense2's software_device (tests/test_camera_realsense.py::record_software_frames) and
replayed by the node through the real SDK pipeline (playback_file). A second node instance with
no camera attached must log a clear error and keep retrying."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from cell.paths import share_file
from tests.ros_client import RosClient, wait_for
from tests.ros_processes import running

pytestmark = pytest.mark.ros
rs = pytest.importorskip("pyrealsense2", reason="pyrealsense2 needs the system libusb-1.0")
from tests.test_camera_realsense import HEIGHT, WIDTH, pattern, record_software_frames  # noqa: E402


def camera_argv(*params: str) -> list[str]:
    argv = [sys.executable, "-m", "ibc_ros.nodes.camera_node", "--ros-args",
            "--params-file", str(share_file("config", "camera.yaml"))]
    for param in params:
        argv += ["-p", param]
    return argv


def test_camera_node_publishes_recording_and_retries_without_camera(tmp_path):
    recording = tmp_path / "d415.db3"
    record_software_frames(recording, 45)
    no_camera = camera_argv("retry_period:=0.5") + ["-r", "__ns:=/absent"]
    with RosClient("camera_test") as client:
        images = client.collect(Image, "camera/image_raw", qos_profile_sensor_data)
        with running(no_camera, tmp_path / "absent.log"), \
                running(camera_argv(f"playback_file:={recording}", "retry_period:=30.0"),
                        tmp_path / "camera.log") as camera:
            wait_for(lambda: len(images) >= 10, 30, "10 images on camera/image_raw")
            wait_for(lambda: (tmp_path / "absent.log").read_text().count("no RealSense camera found") >= 2,
                     20, "two connection attempts without a camera")
    msg = images[-1]
    assert (msg.height, msg.width, msg.encoding, msg.step) == (HEIGHT, WIDTH, "rgb8", WIDTH * 3)
    frame = np.frombuffer(bytes(msg.data), np.uint8).reshape(HEIGHT, WIDTH, 3)
    index = int(frame[0, 0, 2])  # the recording holds 45 frames: the blue value is the index
    assert np.array_equal(frame, pattern(index))
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in images]
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]
    assert "retrying" in (tmp_path / "absent.log").read_text()
    # running() ends with Ctrl-C while the capture thread is publishing: a clean exit, no traceback
    camera_log = (tmp_path / "camera.log").read_text()
    assert camera.returncode == 0 and "Traceback" not in camera_log, camera_log
