"""Rates and latencies the console shows, over a sliding wall-clock window. ROS-free."""
from __future__ import annotations

import time
from collections import deque

import numpy as np


class RateMeter:
    """Events per second over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = 2.0):
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> None:
        self._times.append(time.monotonic() if now is None else now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        return len(self._times) / self.window_s


class LatencyMeter:
    """The last ``size`` samples (seconds); summary in milliseconds."""

    def __init__(self, size: int = 200):
        self._samples: deque[float] = deque(maxlen=size)
        self.count = 0

    def add(self, seconds: float) -> None:
        self._samples.append(seconds)
        self.count += 1

    def summary_ms(self) -> dict[str, float | int]:
        if not self._samples:
            return {"count": 0}
        values = np.asarray(self._samples) * 1e3
        return {"count": self.count, "p50": round(float(np.percentile(values, 50)), 2),
                "p95": round(float(np.percentile(values, 95)), 2), "max": round(float(values.max()), 2)}
