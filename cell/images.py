"""sensor_msgs/Image checks and conversion, ROS-free: works on rclpy messages (the nodes) and on
rosbags' decoded messages (the bag converter) alike, so a frame the policy node refuses is the
frame the converter skips, for the same reason.
"""
from __future__ import annotations

from typing import Any

import numpy as np

ENCODINGS = ("rgb8", "bgr8")


def check_image(msg: Any, expected_size: tuple[int, int] | None = None) -> None:
    """ValueError, naming what is wrong, unless msg is a non-empty rgb8/bgr8 image whose data
    matches its header and, if ``expected_size`` (width, height) is given, of that size (cheap:
    reads the header and the data length only)."""
    if msg.encoding not in ENCODINGS:
        raise ValueError(f"unsupported image encoding {msg.encoding!r} (need rgb8 or bgr8)")
    if msg.height == 0 or msg.width == 0:
        raise ValueError(f"empty image ({msg.width}x{msg.height})")
    if msg.step < msg.width * 3 or len(msg.data) != msg.height * msg.step:
        raise ValueError(f"image data does not match its header: {len(msg.data)} bytes for "
                         f"{msg.width}x{msg.height} {msg.encoding} with step {msg.step}")
    if expected_size is not None and (msg.width, msg.height) != tuple(expected_size):
        raise ValueError(f"image size {msg.width}x{msg.height} does not match the camera configuration "
                         f"{expected_size[0]}x{expected_size[1]}")


def image_to_rgb(msg: Any, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """sensor_msgs/Image (rgb8 or bgr8) -> RGB uint8 [H, W, 3] (a copy); check_image's errors."""
    check_image(msg, expected_size)
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    frame = rows[:, :msg.width * 3].reshape(msg.height, msg.width, 3)
    return np.ascontiguousarray(frame[..., ::-1] if msg.encoding == "bgr8" else frame)
