"""Debug view of an implicit policy's decision, free of ROS: the energy landscape over the 2-D
action grid (dx, dy), drawn as an inset on the camera frame the policy saw.

The action grid lives in setpoint space, not in image pixels (mapping it into the image would
need the camera-table calibration), so it is drawn as a square inset in the top-left corner:
colour = probability exp(-E) normalised over the grid (bright = likely), axes dx to the right
and dy up, a cross at zero motion and a circle at the action the policy chose.
"""
from __future__ import annotations

import cv2
import numpy as np

INSET_FRACTION = 0.45  # of the frame height


def energy_overlay(frame: np.ndarray, xs: np.ndarray, ys: np.ndarray, energies: np.ndarray,
                   action: np.ndarray) -> np.ndarray:
    """RGB uint8 frame with the energy inset; energies[row=y, col=x] as Policy.energy_grid returns."""
    if energies.shape != (len(ys), len(xs)):
        raise ValueError(f"energies {energies.shape} do not match the grid {len(ys)}x{len(xs)}")
    logits = -(energies - energies.min())
    probabilities = np.exp(logits) / np.exp(logits).sum()
    scaled = (255 * probabilities / probabilities.max()).astype(np.uint8)
    size = max(16, int(frame.shape[0] * INSET_FRACTION))
    heat = cv2.resize(np.flipud(scaled), (size, size), interpolation=cv2.INTER_NEAREST)  # dy up
    inset = cv2.applyColorMap(heat, cv2.COLORMAP_INFERNO)[..., ::-1]  # BGR -> RGB

    def to_pixel(dx: float, dy: float) -> tuple[int, int]:
        u = (dx - xs[0]) / (xs[-1] - xs[0]) * (size - 1)
        v = (1.0 - (dy - ys[0]) / (ys[-1] - ys[0])) * (size - 1)
        return int(round(u)), int(round(v))

    inset = np.ascontiguousarray(inset)
    if xs[0] <= 0 <= xs[-1] and ys[0] <= 0 <= ys[-1]:
        cv2.drawMarker(inset, to_pixel(0.0, 0.0), (255, 255, 255), cv2.MARKER_CROSS, max(4, size // 12), 1)
    cv2.circle(inset, to_pixel(float(action[0]), float(action[1])), max(3, size // 20), (0, 255, 0), 2)
    out = np.ascontiguousarray(frame.copy())
    h, w = min(size, out.shape[0]), min(size, out.shape[1])
    out[:h, :w] = inset[:h, :w]
    cv2.rectangle(out, (0, 0), (w - 1, h - 1), (255, 255, 255), 1)
    return out
