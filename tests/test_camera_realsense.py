"""RealSense camera logic (cell/hardware/camera.py) through the real pyrealsense2 SDK, without a
camera: frames are injected with pyrealsense2's software_device, recorded by the SDK's own
rs.recorder into a RealSense recording (.db3, the format SDK 2.59 writes), and read back by
RealSenseCamera through the real rs.pipeline (config.enable_device_from_file)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from cell.hardware.camera import CameraConfig, CameraError, RealSenseCamera
from tests.camera_recordings import read_until_end

rs = pytest.importorskip("pyrealsense2", reason="pyrealsense2 needs the system libusb-1.0")

WIDTH, HEIGHT, FPS = 640, 360, 30


def pattern(index: int) -> np.ndarray:
    """A frame whose pixels identify it: value ramps + the frame index in the blue channel."""
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    frame[..., 0] = (np.arange(WIDTH) % 256)[None, :]
    frame[..., 1] = (np.arange(HEIGHT) % 256)[:, None]
    frame[..., 2] = index % 256
    return frame


def record_software_frames(path: Path, count: int) -> None:
    """Inject `count` pattern frames through a software_device (a D415-like 640x360 rgb8 30 fps
    color sensor) and record them with rs.recorder."""
    device = rs.software_device()
    device.register_info(rs.camera_info.name, "Intel RealSense D415 (software_device)")
    device.register_info(rs.camera_info.serial_number, "000000000415")
    sensor = device.add_sensor("RGB Camera")
    stream = rs.video_stream()
    stream.type, stream.index, stream.uid = rs.stream.color, 0, 0
    stream.width, stream.height, stream.fps, stream.bpp, stream.fmt = WIDTH, HEIGHT, FPS, 3, rs.format.rgb8
    intrinsics = rs.intrinsics()
    intrinsics.width, intrinsics.height, intrinsics.ppx, intrinsics.ppy = WIDTH, HEIGHT, WIDTH / 2, HEIGHT / 2
    intrinsics.fx = intrinsics.fy = 0.72 * WIDTH
    intrinsics.model = rs.distortion.none
    stream.intrinsics = intrinsics
    profile = sensor.add_video_stream(stream).as_video_stream_profile()
    recorder = rs.recorder(str(path), device)
    recording_sensor = recorder.query_sensors()[0]
    recording_sensor.open(recording_sensor.get_stream_profiles()[0])
    delivered: list[int] = []
    recording_sensor.start(lambda f: delivered.append(f.get_frame_number()))
    for index in range(count):
        frame = rs.software_video_frame()
        frame.pixels = pattern(index)
        frame.stride, frame.bpp = WIDTH * 3, 3
        frame.timestamp, frame.domain = time.time() * 1000, rs.timestamp_domain.system_time
        frame.frame_number, frame.profile = index, profile
        sensor.on_video_frame(frame)
        time.sleep(1 / FPS)
    deadline = time.monotonic() + 5
    while len(delivered) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    recording_sensor.stop()
    recording_sensor.close()
    del recording_sensor, recorder  # the recorder finalises the file when released
    assert delivered == list(range(count))


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("realsense") / "software_d415.db3"
    record_software_frames(path, 12)
    return path


def test_realsense_camera_reads_software_device_recording_through_pipeline(recording):
    camera = RealSenseCamera(CameraConfig(playback_file=str(recording), frame_timeout=1.0))
    frames = read_until_end(camera)
    assert len(frames) >= 10  # real-time playback may drop a frame at the start
    numbers = [f.number for f in frames]
    assert numbers == sorted(numbers)
    for frame in frames:
        assert frame.rgb.shape == (HEIGHT, WIDTH, 3) and frame.rgb.dtype == np.uint8
        assert np.array_equal(frame.rgb, pattern(frame.number))  # pixel-exact through the SDK
    # A recording's timestamps are from its own past: frames are stamped on arrival instead.
    assert abs(frames[-1].capture_time - time.time()) < 5.0


def test_missing_camera_and_bad_stream_give_clear_errors(recording, tmp_path):
    if len(rs.context().query_devices()) == 0:
        with pytest.raises(CameraError, match="no RealSense camera found"):
            RealSenseCamera(CameraConfig())
    with pytest.raises(CameraError, match="cannot start the RealSense color stream 1280x720"):
        RealSenseCamera(CameraConfig(playback_file=str(recording), width=1280, height=720))
    with pytest.raises(CameraError, match="missing.db3 not found"):
        RealSenseCamera(CameraConfig(playback_file=str(tmp_path / "missing.db3")))
