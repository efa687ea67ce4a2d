"""Image preprocessing shared by dataset generation/conversion, training and the policy node.

A camera frame (any size, RGB uint8) is cropped to a region of interest given as fractions of
the frame (so one spec serves 640x360 hardware frames and smaller sim renders of the same
view) and resized with area averaging to the policy's input size.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ImageSpec:
    height: int = 72                               # policy input size (pixels)
    width: int = 128
    crop: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # x0, y0, x1, y1 as frame fractions

    def validate(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"image size must be positive, got {self.height}x{self.width}")
        x0, y0, x1, y1 = self.crop
        if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
            raise ValueError(f"crop {self.crop} must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")


def preprocess_image(frame: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """Crop and resize an RGB uint8 frame [H, W, 3] to [spec.height, spec.width, 3] uint8."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or frame.size == 0:
        raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {frame.dtype} {frame.shape}")
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = spec.crop
    cropped = frame[int(round(y0 * h)):int(round(y1 * h)), int(round(x0 * w)):int(round(x1 * w))]
    if cropped.shape[:2] == (spec.height, spec.width):
        return np.ascontiguousarray(cropped)
    return cv2.resize(cropped, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
