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


@dataclass
class FrameGate:
    max_age: float           # s; older frames are refused
    max_lead: float          # s; frames stamped further ahead of the clock are refused

    def __post_init__(self) -> None:
        if not self.max_age > 0 or not self.max_lead >= 0:
            raise ValueError(f"max_age must be positive and max_lead non-negative, "
                             f"got {self.max_age} and {self.max_lead}")
        self._last_used = -math.inf
        self._reset_at = -math.inf

    def check(self, stamp: float, now: float) -> tuple[Verdict, str]:
        """Verdict for a frame stamped ``stamp`` at ``now`` (seconds, same clock), and a reason
        worth logging for the refusals that are faults (too old, from the future)."""
        if not math.isfinite(stamp):
            return "from_future", f"frame stamp {stamp} is not a time"
        if stamp - now > self.max_lead:
            return "from_future", (f"frame stamped {stamp - now:.3f} s in the future (tolerance "
                                   f"{self.max_lead} s): not acting on it")
        if stamp <= self._last_used or stamp < self._reset_at:
            return "seen", ""  # nothing new since the last action / from the previous episode
        age = now - stamp
        if age > self.max_age:
            return "too_old", f"newest frame is {age:.2f} s old (max {self.max_age} s): not acting on it"
        return "act", ""

    def take(self, stamp: float, now: float) -> tuple[Verdict, str]:
        """check(), and remember the stamp when the verdict is to act."""
        verdict, reason = self.check(stamp, now)
        if verdict == "act":
            self._last_used = stamp
        return verdict, reason

    def reset(self, now: float) -> None:
        """New episode: frames stamped before ``now`` are ignored, and whatever was acted on
        before no longer blocks anything."""
        self._last_used = -math.inf
        self._reset_at = now
