"""Linear interpolation of 5 Hz Cartesian setpoints into 100 Hz targets (paper, appendix C.3)."""
from __future__ import annotations

import numpy as np


class SetpointInterpolator:
    """Moves linearly from the last commanded point to a new setpoint over ``period_s``.

    The segment starts at the point commanded at the moment the setpoint arrives, never at
    the measured pose (measurement noise would become jitter). With setpoints arriving every
    period this is exactly the previous setpoint; an early setpoint starts from wherever the
    interpolation was, so the commanded path never jumps. After the period it holds the
    setpoint until the next one.
    """

    def __init__(self, period_s: float, start: np.ndarray):
        if period_s <= 0:
            raise ValueError(f"period_s must be positive, got {period_s}")
        self.period_s = period_s
        self.reset(start)

    def reset(self, point: np.ndarray, t: float = 0.0) -> None:
        self._start = np.asarray(point, dtype=np.float64).copy()
        self._goal = self._start.copy()
        self._t0 = t
        self._duration = self.period_s

    @property
    def goal(self) -> np.ndarray:
        return self._goal.copy()

    def set_goal(self, goal: np.ndarray, t: float, duration_s: float | None = None) -> None:
        """Head for goal from the point commanded at t, arriving after duration_s (default: the
        policy period)."""
        duration = self.period_s if duration_s is None else duration_s
        if duration <= 0:
            raise ValueError(f"duration_s must be positive, got {duration}")
        self._start = self.position(t)
        self._goal = np.asarray(goal, dtype=np.float64).copy()
        self._t0 = t
        self._duration = duration

    def hold(self, t: float) -> None:
        """Stop where the interpolation is now (e-stop)."""
        self.reset(self.position(t), t)

    def position(self, t: float) -> np.ndarray:
        fraction = float(np.clip((t - self._t0) / self._duration, 0.0, 1.0))
        return self._start + fraction * (self._goal - self._start)
