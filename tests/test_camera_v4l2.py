"""The V4L2/OpenCV camera fallback (cell.hardware.camera.V4L2Camera). There is no /dev/video*
on this machine and its kernel has no v4l2loopback module, so the source's read path (BGR->RGB,
scaling to the configured size, frame numbering, pacing) runs on recorded data: a video written
by OpenCV in MJPG, a format UVC cameras deliver, replayed with `playback_file`."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from cell.hardware.camera import CameraConfig, CameraError, open_camera
from cell.paths import share_file
from tests.camera_recordings import read_until_end
from tests.ros_client import RosClient, wait_for
from tests.ros_processes import running


def test_v4l2_fallback_without_a_device_is_a_clear_error(tmp_path):
    with pytest.raises(CameraError, match="cannot open V4L2 camera '/dev/video99'"):
        open_camera(CameraConfig(source="v4l2", device="/dev/video99"))
    with pytest.raises(CameraError, match="missing.avi not found"):
        open_camera(CameraConfig(source="v4l2", playback_file=str(tmp_path / "missing.avi")))
    (tmp_path / "not_video.avi").write_bytes(b"not a video")
    with pytest.raises(CameraError, match="OpenCV cannot read the video"):
        open_camera(CameraConfig(source="v4l2", playback_file=str(tmp_path / "not_video.avi")))


def write_v4l2_recording(path: Path, count: int, size: tuple[int, int] = (320, 180)) -> None:
    """A video as OpenCV captures it from a UVC camera (BGR, MJPG - a common UVC format): frame k
    is pure blue with a red bar k*10 rows tall (which only survives as red if BGR->RGB is right)."""
    import cv2
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, size)
    for k in range(count):
        bgr = np.zeros((size[1], size[0], 3), np.uint8)
        bgr[..., 0] = 255
        bgr[: k * 10 + 10, :, :] = (0, 0, 255)
        writer.write(bgr)
    writer.release()


def test_v4l2_camera_reads_a_recorded_video_through_the_same_read_path(tmp_path):
    video = tmp_path / "uvc.avi"
    write_v4l2_recording(video, 8)
    camera = open_camera(CameraConfig(source="v4l2", playback_file=str(video), width=640, height=360, fps=20))
    started = time.monotonic()
    frames = read_until_end(camera)
    elapsed = time.monotonic() - started
    assert [f.number for f in frames] == list(range(1, 9))
    for k, frame in enumerate(frames):
        assert frame.rgb.shape == (360, 640, 3) and frame.rgb.dtype == np.uint8   # scaled 320x180 -> 640x360
        red_rows = (frame.rgb[:, 320, 0] > 200) & (frame.rgb[:, 320, 2] < 60)
        blue_rows = (frame.rgb[:, 320, 2] > 200) & (frame.rgb[:, 320, 0] < 60)
        assert abs(red_rows.sum() - 2 * (k * 10 + 10)) <= 4 and red_rows.sum() + blue_rows.sum() >= 350
    assert elapsed >= 7 / 20   # paced at fps (a lower bound only: never a wall-clock upper bound)


@pytest.mark.ros
def test_camera_node_streams_the_v4l2_source(tmp_path):
    """camera_node in a real process (real DDS) with source v4l2 on the recorded video."""
    video = tmp_path / "uvc.avi"
    write_v4l2_recording(video, 8)   # replayed in a loop: the node reopens it at its end
    argv = [sys.executable, "-m", "ibc_ros.nodes.camera_node", "--ros-args",
            "--params-file", str(share_file("config", "camera.yaml")),
            "-p", "source:=v4l2", "-p", f"playback_file:={video}", "-p", "fps:=30", "-p", "retry_period:=30.0"]
    with RosClient("v4l2_camera_test") as client, running(argv, tmp_path / "camera.log"):
        images = client.collect(Image, "camera/image_raw", qos_profile_sensor_data)
        wait_for(lambda: len(images) >= 5, 60, "5 images from the v4l2 source")
    assert "streaming video" in (tmp_path / "camera.log").read_text()
    msg = images[-1]
    assert (msg.height, msg.width, msg.encoding, msg.step) == (360, 640, "rgb8", 640 * 3)
    rgb = np.frombuffer(bytes(msg.data), np.uint8).reshape(360, 640, 3)
    assert rgb[0, 320, 0] > 200 and rgb[0, 320, 2] < 60, rgb[::40, 320]   # the red bar: RGB order
    assert rgb[-1, 320, 2] > 200 and rgb[-1, 320, 0] < 60    # blue below it
