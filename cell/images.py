"""sensor_msgs/Image and sensor_msgs/CompressedImage checks and conversion, ROS-free: works on
rclpy messages (the nodes) and on rosbags' decoded messages (the recorder, the bag converter)
alike, so a frame the policy node refuses is the frame the converter skips, for the same reason.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

ENCODINGS = ("rgb8", "bgr8")
CODECS = ("jpeg", "png")
# image_transport's compressed publisher defaults: PNG level 3 (fast; PNG is lossless at any level).
PNG_LEVEL = 3


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


def compress_image(msg: Any, codec: str, jpeg_quality: int) -> tuple[str, bytes]:
    """sensor_msgs/Image (rgb8 or bgr8) -> (format, data) of the sensor_msgs/CompressedImage that
    image_transport's compressed publisher sends for it: format "rgb8; jpeg compressed bgr8" (the
    source encoding, the codec, what a decoder gives back), data a standard JPEG/PNG file.
    check_image's errors; ValueError for an unknown codec."""
    if codec not in CODECS:
        raise ValueError(f"unknown image codec {codec!r} (need one of {list(CODECS)})")
    bgr = image_to_rgb(msg)[..., ::-1]
    params = ([cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if codec == "jpeg"
              else [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
    ok, encoded = cv2.imencode(".jpg" if codec == "jpeg" else ".png", np.ascontiguousarray(bgr), params)
    if not ok:
        raise ValueError(f"{codec} encoding of a {msg.width}x{msg.height} frame failed")
    return f"{msg.encoding}; {codec} compressed bgr8", encoded.tobytes()


def compressed_image_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG or PNG, as image_transport or compress_image wrote it) ->
    RGB uint8 [H, W, 3]; ValueError, naming the format, for data no decoder reads."""
    if "compressedDepth" in msg.format:
        raise ValueError(f"unsupported compressed image format {msg.format!r} (a depth image)")
    data = np.frombuffer(bytes(msg.data), np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise ValueError(f"undecodable compressed image ({len(data)} bytes, format {msg.format!r})")
    return np.ascontiguousarray(bgr[..., ::-1])
