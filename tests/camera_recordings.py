"""Shared by the camera tests: read a replayed recording to its end."""
from __future__ import annotations

from cell.hardware.camera import Camera, CameraError, Frame


def read_until_end(camera: Camera) -> list[Frame]:
    """Every frame of a replayed recording; the camera must end with "end of the recording"
    (not another error) and is closed afterwards."""
    frames = []
    try:
        while True:
            try:
                frames.append(camera.read())
            except CameraError as exc:
                assert "end of the recording" in str(exc)
                return frames
    finally:
        camera.close()
