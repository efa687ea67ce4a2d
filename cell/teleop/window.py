"""The teleop window (OpenCV, ROS-free): live image with the workspace drawn on it, mouse and
keyboard events, corner-click calibration. Needs an OpenCV build with GUI support
(opencv-python on the operator's workstation; the headless wheel has none)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

from cell.teleop.mapping import TableHomography

WINDOW = "ibc_ros teleop"
_GREEN, _RED, _YELLOW, _CYAN = (0, 200, 0), (0, 0, 255), (0, 220, 255), (255, 200, 0)


def draw_overlay(frame_rgb: np.ndarray, homography: TableHomography | None, corners_xy: Sequence[Sequence[float]],
                 commanded_xy: np.ndarray | None, target_xy: np.ndarray | None, status: str,
                 clicks: Sequence[Sequence[float]] = ()) -> np.ndarray:
    """BGR image for display: workspace outline, commanded setpoint, pointer target, status."""
    image = np.ascontiguousarray(frame_rgb[:, :, ::-1])
    size = (frame_rgb.shape[1], frame_rgb.shape[0])
    if homography is not None:
        outline = np.array([homography.to_pixel(c, size) for c in corners_xy], dtype=np.int32)
        cv2.polylines(image, [outline], isClosed=True, color=_GREEN, thickness=1)
        for xy, colour in ((commanded_xy, _CYAN), (target_xy, _RED)):
            if xy is not None:
                u, v = homography.to_pixel(xy, size)
                cv2.circle(image, (int(round(u)), int(round(v))), 5, colour, 2)
    for u, v in clicks:
        cv2.drawMarker(image, (int(u), int(v)), _YELLOW, cv2.MARKER_CROSS, 12, 2)
    cv2.putText(image, status, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _YELLOW, 1, cv2.LINE_AA)
    return image


@dataclass
class MouseState:
    pressed: bool = False
    uv: tuple[float, float] | None = None
    clicks: list[tuple[float, float]] = field(default_factory=list)   # calibration clicks


class TeleopWindow:
    """Hold the left button and move to push; keys are read by poll()."""

    def __init__(self) -> None:
        try:
            cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)
        except cv2.error as exc:
            raise RuntimeError("this OpenCV build has no GUI support (opencv-python-headless?); "
                               "use the operator console (the web page console_node serves) or install "
                               "opencv-python on the operator's machine for display:=window") from exc
        self.mouse = MouseState()
        self.calibrating = False
        cv2.setMouseCallback(WINDOW, self._on_mouse)

    def _on_mouse(self, event: int, u: int, v: int, _flags: int, _param: object) -> None:
        if self.calibrating:
            if event == cv2.EVENT_LBUTTONDOWN:
                self.mouse.clicks.append((float(u), float(v)))
            return
        if event == cv2.EVENT_LBUTTONDOWN:
            self.mouse.pressed = True
        elif event == cv2.EVENT_LBUTTONUP:
            self.mouse.pressed = False
        self.mouse.uv = (float(u), float(v))

    def show(self, image_bgr: np.ndarray) -> str | None:
        """Display a frame; returns the key pressed meanwhile (if any)."""
        cv2.imshow(WINDOW, image_bgr)
        key = cv2.waitKey(1) & 0xFF
        return chr(key) if key != 0xFF else None

    def close(self) -> None:
        cv2.destroyWindow(WINDOW)
