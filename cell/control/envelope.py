"""The one place that enforces the cell's motion limits: setpoint deltas, the Cartesian
workspace (box and reachable ring) at fixed height, and the per-cycle joint step
(LeRobot's max_relative_target)."""
from __future__ import annotations

import numpy as np

from cell.control.config import ControllerConfig


class SafetyEnvelope:
    def __init__(self, config: ControllerConfig):
        ws = config.workspace
        self.low = np.array([ws.x[0], ws.y[0]])
        self.high = np.array([ws.x[1], ws.y[1]])
        self.min_radius, self.max_radius = ws.radius
        self.height = ws.height
        self.max_setpoint_step = config.max_setpoint_step
        self.max_joint_step = config.max_joint_step

    def clamp_delta(self, delta_xy: np.ndarray) -> np.ndarray:
        """Limit a setpoint delta per axis; raises on malformed or non-finite input."""
        delta = np.asarray(delta_xy, dtype=np.float64)
        if delta.shape != (2,) or not np.all(np.isfinite(delta)):
            raise ValueError(f"setpoint delta must be 2 finite numbers, got {delta_xy!r}")
        return np.clip(delta, -self.max_setpoint_step, self.max_setpoint_step)

    def clamp_target(self, xy: np.ndarray) -> np.ndarray:
        """Cartesian target xyz inside the workspace at the fixed working height: the box,
        then the reachable ring around the base (radial projection keeps the direction)."""
        xy = np.asarray(xy, dtype=np.float64)[:2]
        if not np.all(np.isfinite(xy)):
            raise ValueError(f"target must be finite, got {xy!r}")
        xy = np.clip(xy, self.low, self.high)
        radius = float(np.hypot(*xy))
        if radius > self.max_radius or radius < self.min_radius:
            direction = xy / radius if radius > 0 else np.array([1.0, 0.0])
            xy = direction * np.clip(radius, self.min_radius, self.max_radius)
            xy = np.clip(xy, self.low, self.high)  # the ring and the box overlap near the arm's axis
        return np.array([xy[0], xy[1], self.height])

    def contains(self, xy: np.ndarray) -> bool:
        xy = np.asarray(xy, dtype=np.float64)[:2]
        radius = float(np.hypot(*xy))
        return bool(np.all(xy >= self.low) and np.all(xy <= self.high)
                    and self.min_radius <= radius <= self.max_radius)

    def limit_joint_step(self, previous: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Move from ``previous`` towards ``target`` by at most max_joint_step per joint, all
        joints scaled by one factor. Clipping each joint on its own would let the fast joint lag
        while the others arrive, and the tip leave the working plane: measured 9 cm below it
        (into the table) for full-speed setpoints near the arm's reach. On the joint-space
        line the lagging tip stays on the chord towards the target, in the plane."""
        previous = np.asarray(previous, dtype=np.float64)
        step = np.asarray(target, dtype=np.float64) - previous
        largest = float(np.max(np.abs(step)))
        if largest > self.max_joint_step:
            step *= self.max_joint_step / largest
        return previous + step
