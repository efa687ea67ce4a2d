"""Camera sources for the camera node, free of ROS: Intel RealSense (pyrealsense2) and a
V4L2/OpenCV fallback. Each yields RGB uint8 frames with their capture time.

    camera = open_camera(CameraConfig(source="realsense", serial="", width=640, height=360, fps=30))
    frame = camera.read()        # Frame(rgb [H, W, 3] uint8, capture_time s since epoch, number)
    camera.close()

Capture time: a D415 stamps frames in the host's clock (global/system time domain), which is the
moment of capture; a hardware-clock or recorded timestamp is not comparable with ROS time, so
then the arrival time on the host is used. `playback_file` replays a recording instead of a live
camera, through the same code: a RealSense recording (.db3 in SDK 2.59; older SDKs wrote .bag)
through the SDK pipeline, or - for source v4l2 - a video file OpenCV reads (e.g. one recorded
from that camera with `ffmpeg -f v4l2 -i /dev/video0 out.avi`), paced at `fps`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np


class CameraError(RuntimeError):
    """No camera, or it stopped delivering frames; the message says what to check."""


@dataclass
class CameraConfig:
    source: Literal["realsense", "v4l2"] = "realsense"
    serial: str = ""             # RealSense serial number; empty = the first one found
    device: str = "0"            # V4L2: index ("0") or path ("/dev/video2")
    width: int = 640
    height: int = 360
    fps: int = 30
    # recording to replay instead of a live camera (RealSense .db3/.bag, or a video for v4l2)
    playback_file: str = ""
    frame_timeout: float = 2.0   # s without a frame before the camera counts as lost

    def validate(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.fps <= 0:
            raise ValueError(f"width, height and fps must be positive, got {self.width}x{self.height}@{self.fps}")
        if self.frame_timeout <= 0:
            raise ValueError(f"frame_timeout must be positive, got {self.frame_timeout}")


@dataclass
class Frame:
    rgb: np.ndarray
    capture_time: float   # seconds since the epoch (host clock)
    number: int


class Camera(Protocol):
    def read(self) -> Frame: ...
    def close(self) -> None: ...


class RealSenseCamera:
    def __init__(self, config: CameraConfig) -> None:
        try:
            import pyrealsense2 as rs
        except ImportError as exc:  # most often the system libusb-1.0 is missing
            raise CameraError(f"pyrealsense2 cannot be imported ({exc}); install libusb-1.0-0") from exc
        self._rs, self.config = rs, config
        self._pipeline = rs.pipeline()
        rs_config = rs.config()
        if config.playback_file:
            if not Path(config.playback_file).is_file():
                raise CameraError(f"RealSense recording {config.playback_file} not found")
            rs_config.enable_device_from_file(config.playback_file, repeat_playback=False)
        else:
            self._require_device(config.serial)
            if config.serial:
                rs_config.enable_device(config.serial)
        rs_config.enable_stream(rs.stream.color, config.width, config.height, rs.format.rgb8, config.fps)
        try:
            profile = self._pipeline.start(rs_config)
        except RuntimeError as exc:
            raise CameraError(f"cannot start the RealSense color stream {config.width}x{config.height}"
                              f"@{config.fps} rgb8 ({exc}); check the resolution/fps the camera supports") from exc
        self._playback = bool(config.playback_file)
        if self._playback:
            profile.get_device().as_playback().set_real_time(True)
        self.device_name = profile.get_device().get_info(rs.camera_info.name)

    def _require_device(self, serial: str) -> None:
        devices = self._rs.context().query_devices()
        serials = [d.get_info(self._rs.camera_info.serial_number) for d in devices]
        if not serials:
            raise CameraError("no RealSense camera found: check the USB 3 cable/port and udev rules "
                              "(librealsense's 99-realsense-libusb.rules), or use camera:=v4l2")
        if serial and serial not in serials:
            raise CameraError(f"RealSense serial {serial} not found; connected: {', '.join(serials)}")

    def read(self) -> Frame:
        ok, frames = self._pipeline.try_wait_for_frames(int(self.config.frame_timeout * 1000))
        if not ok:
            raise CameraError(f"no frame from the RealSense within {self.config.frame_timeout} s"
                              + (" (end of the recording)" if self._playback else ""))
        arrival = time.time()
        color = frames.get_color_frame()
        rgb = np.asanyarray(color.get_data()).copy()
        domain = color.get_frame_timestamp_domain()
        host_domains = (self._rs.timestamp_domain.global_time, self._rs.timestamp_domain.system_time)
        capture = color.get_timestamp() / 1000.0 if (domain in host_domains and not self._playback) else arrival
        return Frame(rgb, capture, int(color.get_frame_number()))

    def close(self) -> None:
        try:
            self._pipeline.stop()
        except RuntimeError:
            pass  # never started


class V4L2Camera:
    def __init__(self, config: CameraConfig) -> None:
        import cv2
        self._cv2, self.config = cv2, config
        self._playback = bool(config.playback_file)
        if self._playback:
            self._capture = self._open_recording(config.playback_file)
            self.device_name = f"video {config.playback_file}"
        else:
            self._capture = self._open_device(config)
            self.device_name = f"V4L2 camera {config.device!r}"
        self._number = 0
        self._next_due = time.monotonic()

    def _open_device(self, config: CameraConfig):
        device: int | str = int(config.device) if config.device.isdigit() else config.device
        capture = self._cv2.VideoCapture(device, self._cv2.CAP_V4L2)
        if not capture.isOpened():
            raise CameraError(f"cannot open V4L2 camera {config.device!r}: check `v4l2-ctl --list-devices`")
        capture.set(self._cv2.CAP_PROP_FRAME_WIDTH, config.width)
        capture.set(self._cv2.CAP_PROP_FRAME_HEIGHT, config.height)
        capture.set(self._cv2.CAP_PROP_FPS, config.fps)
        capture.set(self._cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a backlog
        return capture

    def _open_recording(self, path: str):
        if not Path(path).is_file():
            raise CameraError(f"video recording {path} not found")
        capture = self._cv2.VideoCapture(path)
        if not capture.isOpened():
            raise CameraError(f"OpenCV cannot read the video {path}: use a format its FFmpeg reads (.avi, .mp4)")
        return capture

    def read(self) -> Frame:
        if self._playback:  # a file reads as fast as it decodes: release frames at the camera's rate
            now = time.monotonic()
            time.sleep(max(0.0, self._next_due - now))
            self._next_due = max(self._next_due, now) + 1.0 / self.config.fps
        ok, bgr = self._capture.read()
        if not ok:
            raise CameraError(f"{self.device_name} delivered no frame"
                              + (" (end of the recording)" if self._playback else ""))
        capture = time.time()
        rgb = self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB)
        if rgb.shape[:2] != (self.config.height, self.config.width):
            # Not every UVC camera offers 640x360; scale so downstream crops see the configured view.
            rgb = self._cv2.resize(rgb, (self.config.width, self.config.height), interpolation=self._cv2.INTER_AREA)
        self._number += 1
        return Frame(rgb, capture, self._number)

    def close(self) -> None:
        self._capture.release()


def open_camera(config: CameraConfig) -> Camera:
    return RealSenseCamera(config) if config.source == "realsense" else V4L2Camera(config)
