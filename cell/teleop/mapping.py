"""Camera pixel <-> table xy (metres, robot base frame) for mouse teleoperation. ROS-free.

The table is a plane, so for a pinhole camera the map is exactly a homography. It comes from
  * hardware: a one-time calibration, the operator clicks known table points (by default the
    workspace corners) in the live image; saved to YAML and loaded on every start;
  * sim: the known camera model (sim/config.py CameraConfig: look-at pose, focal length),
    by projecting table points through it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import cv2
import numpy as np
import yaml

MIN_POINTS = 4


@dataclass
class TableMappingConfig:
    """Where the camera-to-table map comes from; shared by the teleop node (which maps the
    pointer with it) and the operator console (which draws the workspace with it and saves
    the calibration it clicks), so both always use the same map."""
    mapping: Literal["sim_camera", "calibration"] = "sim_camera"
    calibration_file: str = "~/.ibc_ros/teleop_calibration.yaml"
    sim_task: str = "push_pixels"            # sim config whose camera model gives the mapping
    table_z: float = 0.0                     # table surface height (m, base frame)
    controller_config: str = ""              # controller YAML (workspace corners); "" = the installed config/controller.yaml

    def calibration_path(self) -> Path:
        return Path(self.calibration_file).expanduser()


class CalibrationError(ValueError):
    """Calibration points or file are unusable."""


class TableHomography:
    """Maps image pixels (u right, v down) to table xy and back."""

    def __init__(self, pixel_to_table: np.ndarray, image_size: tuple[int, int]):
        matrix = np.asarray(pixel_to_table, dtype=np.float64)
        if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) < 1e-15:
            raise CalibrationError(f"homography must be an invertible 3x3 matrix, got {matrix.tolist()}")
        self.matrix = matrix
        self.inverse = np.linalg.inv(matrix)
        self.image_size = (int(image_size[0]), int(image_size[1]))  # width, height

    @classmethod
    def from_points(cls, pixels: Sequence[Sequence[float]], table_xy: Sequence[Sequence[float]],
                    image_size: tuple[int, int]) -> "TableHomography":
        src = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
        dst = np.asarray(table_xy, dtype=np.float64).reshape(-1, 2)
        if len(src) != len(dst) or len(src) < MIN_POINTS:
            raise CalibrationError(f"need >= {MIN_POINTS} matching pixel/table points, got {len(src)}/{len(dst)}")
        matrix, _ = cv2.findHomography(src, dst, method=0)
        if matrix is None:
            raise CalibrationError("points are degenerate (collinear or repeated); click them again")
        return cls(matrix, image_size)

    def to_table(self, uv: Sequence[float], image_size: tuple[int, int] | None = None) -> np.ndarray:
        """Table xy of pixel ``uv``; ``image_size`` rescales from a differently sized frame."""
        u, v = self._rescale(uv, image_size, to_calibrated=True)
        x, y, w = self.matrix @ np.array([u, v, 1.0])
        return np.array([x / w, y / w])

    def to_pixel(self, xy: Sequence[float], image_size: tuple[int, int] | None = None) -> np.ndarray:
        u, v, w = self.inverse @ np.array([xy[0], xy[1], 1.0])
        return self._rescale((u / w, v / w), image_size, to_calibrated=False)

    def _rescale(self, uv: Sequence[float], image_size: tuple[int, int] | None, to_calibrated: bool) -> np.ndarray:
        uv = np.asarray(uv, dtype=np.float64)
        if image_size is None or tuple(image_size) == self.image_size:
            return uv
        scale = np.array(self.image_size, dtype=np.float64) / np.array(image_size, dtype=np.float64)
        return uv * scale if to_calibrated else uv / scale

    def save(self, path: str | Path, pixels: Sequence[Sequence[float]] = (),
             table_xy: Sequence[Sequence[float]] = ()) -> None:
        data = {"pixel_to_table": self.matrix.tolist(), "image_size": list(self.image_size),
                "pixels": [list(map(float, p)) for p in pixels],
                "table_xy": [list(map(float, p)) for p in table_xy]}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(yaml.safe_dump(data, sort_keys=False))

    @classmethod
    def load(cls, path: str | Path) -> "TableHomography":
        path = Path(path)
        if not path.is_file():
            raise CalibrationError(f"calibration file {path} does not exist; run the teleop node's "
                                   "calibration (press 'c' and click the workspace corners)")
        try:
            data = yaml.safe_load(path.read_text())
            return cls(np.asarray(data["pixel_to_table"], dtype=np.float64), tuple(data["image_size"]))
        except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"{path}: not a teleop calibration ({exc})") from exc


@dataclass(frozen=True)
class LookAtCamera:
    """A pinhole camera posed like PyBullet's computeViewMatrix (eye, target, up), with square
    pixels, focal length ``focal_px`` and the principal point at the image centre."""
    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    up: tuple[float, float, float]
    focal_px: float
    width: int
    height: int

    def project(self, points_xyz: np.ndarray) -> np.ndarray:
        """World points [N, 3] -> pixel coordinates [N, 2] (u right, v down; pixel (i, j) is
        centred on the integer coordinate, as mouse events report it)."""
        eye = np.asarray(self.eye, dtype=np.float64)
        forward = np.asarray(self.target, dtype=np.float64) - eye
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, np.asarray(self.up, dtype=np.float64))
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        rel = np.asarray(points_xyz, dtype=np.float64) - eye
        depth = rel @ forward
        if np.any(depth <= 0):
            raise CalibrationError("a table point lies behind the camera")
        focal = self.focal_px
        u = (self.width - 1) / 2.0 + focal * (rel @ right) / depth
        v = (self.height - 1) / 2.0 + focal * (rel @ down) / depth
        return np.stack([u, v], axis=1)

    def table_homography(self, table_z: float, corners_xy: Sequence[Sequence[float]]) -> TableHomography:
        table = np.asarray(corners_xy, dtype=np.float64)
        pixels = self.project(np.column_stack([table, np.full(len(table), table_z)]))
        return TableHomography.from_points(pixels, table, (self.width, self.height))


def workspace_corners(x: Sequence[float], y: Sequence[float]) -> list[list[float]]:
    """The calibration click order: (x0,y0), (x1,y0), (x1,y1), (x0,y1)."""
    return [[x[0], y[0]], [x[1], y[0]], [x[1], y[1]], [x[0], y[1]]]
