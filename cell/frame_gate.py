"""Which camera frame a policy may act on, by its capture stamp (ROS-free; the policy node's rule).

A frame is acted on at most once, only if it is newer than the last one acted on and not from
before the last reset, no older than ``max_age`` and no further than ``max_lead`` ahead of the
node's clock. The lead bound keeps one frame stamped in the future (a camera PC's clock jumping
ahead, a bad replay) from doing harm: acted on, its stamp would make every honestly stamped frame
after it look "already seen" for as long as the stamp stays in the future (1 h measured: the
policy fell silent for good). A reset forgets the last stamp acted on, so it always recovers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["act", "seen", "too_old", "from_future"]
NS = 1_000_000_000


@dataclass
class FrameGate:
    max_age: float           # s; older frames are refused
    max_lead: float          # s; frames stamped further ahead of the clock are refused

    def __post_init__(self) -> None:
        if not self.max_age > 0 or not self.max_lead >= 0 or not math.isfinite(self.max_age + self.max_lead):
            raise ValueError(f"max_age must be positive and max_lead non-negative, "
                             f"got {self.max_age} and {self.max_lead}")
        # Stamps and clock readings are integer nanoseconds: equal instants compare equal.
        self._max_age_ns = round(self.max_age * NS)
        self._max_lead_ns = round(self.max_lead * NS)
        self._last_used: int | None = None
        self._reset_at: int | None = None

    def check(self, stamp_ns: int, now_ns: int) -> tuple[Verdict, str]:
        """Verdict for a frame stamped ``stamp_ns`` at ``now_ns`` (integer nanoseconds, same
        clock), and a reason worth logging for the refusals that are faults (too old, from the
        future)."""
        if stamp_ns - now_ns > self._max_lead_ns:
            return "from_future", (f"frame stamped {(stamp_ns - now_ns) / NS:.3f} s in the future (tolerance "
                                   f"{self.max_lead} s): not acting on it")
        if (self._last_used is not None and stamp_ns <= self._last_used) or \
                (self._reset_at is not None and stamp_ns < self._reset_at):
            return "seen", ""  # nothing new since the last action / from the previous episode
        age_ns = now_ns - stamp_ns
        if age_ns > self._max_age_ns:
            return "too_old", f"newest frame is {age_ns / NS:.2f} s old (max {self.max_age} s): not acting on it"
        return "act", ""

    def take(self, stamp_ns: int, now_ns: int) -> tuple[Verdict, str]:
        """check(), and remember the stamp when the verdict is to act."""
        verdict, reason = self.check(stamp_ns, now_ns)
        if verdict == "act":
            self._last_used = stamp_ns
        return verdict, reason

    def reset(self, now_ns: int) -> None:
        """New episode: frames stamped before ``now_ns`` are ignored, and whatever was acted on
        before no longer blocks anything."""
        self._last_used = None
        self._reset_at = now_ns
