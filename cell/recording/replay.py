"""Replay pacing without ROS: when each recorded message is due (ReplayClock), header stamps moved
to wall time (Restamper). The command is ibc_cli/replay.py (ibc-replay); the publishing loop is
ibc_ros/nodes/replay_publisher.py.
"""
from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator

from cell.recording.bag_io import BagMessage, deserialize, serialize


CLOCK_TOPIC = "/clock"


class ReplayClock:
    """When each message is due: wall start + (log time - first log time) / rate."""

    def __init__(self, rate: float, now: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, wall_ns: Callable[[], int] = time.time_ns):
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self._now = now
        self._sleep = sleep
        self._wall_ns = wall_ns
        self._origin: tuple[float, int] | None = None   # (wall start, first log time)
        self._origin_wall_ns = 0                         # the wall clock (time_ns) at that start

    def due(self, log_time_ns: int) -> float:
        if self._origin is None:
            self._origin = (self._now(), log_time_ns)
            self._origin_wall_ns = self._wall_ns()
        wall_start, first_log = self._origin
        return wall_start + (log_time_ns - first_log) / 1e9 / self.rate

    def due_wall_ns(self, time_ns: int) -> int:
        """Wall-clock time (ns) at which a message logged at ``time_ns`` is due; the origin is
        the first message due (due()/wait_for() must have been called once)."""
        if self._origin is None:
            raise RuntimeError("due_wall_ns before the first message was due")
        return self._origin_wall_ns + round((time_ns - self._origin[1]) / self.rate)

    def wait_for(self, log_time_ns: int) -> float:
        """Sleep until the message is due; returns how late it is then (s, >= 0 normally)."""
        due = self.due(log_time_ns)
        remaining = due - self._now()
        if remaining > 0:
            self._sleep(remaining)
        return self._now() - due


class Restamper:
    """--restamp: every header stamp moves to replay time, first log time -> wall time at the
    first message (with ``clock``, as ibc-replay does: the wall time at which the pacing clock
    started), spacing divided by rate (as the pacing). Nodes running on wall time (the
    policy's max_frame_age, the controller's setpoint age) then take a recording for a live
    stream. Messages without a header, and zero (unset) stamps, pass unchanged."""

    def __init__(self, rate: float, wall_ns: Callable[[], int] = time.time_ns, clock: ReplayClock | None = None):
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self._wall_ns = wall_ns
        self._clock = clock
        self._origin: tuple[int, int] | None = None   # (wall ns at the first message, its log time)

    def stamp_ns(self, recorded_ns: int, log_time_ns: int) -> int:
        if self._clock is not None:
            # The pacing clock's origin: a stamp is never later than the wall time its message is
            # due. (Taking the wall clock at the first restamp instead put every stamp ahead by
            # however long that first message took to decode - 0.17 s measured, building the
            # message type store - and the policy rightly refused the frames as from the future.)
            return self._clock.due_wall_ns(recorded_ns)
        if self._origin is None:
            self._origin = (self._wall_ns(), log_time_ns)
        wall_start, first_log = self._origin
        return wall_start + round((recorded_ns - first_log) / self.rate)

    def restamp(self, message: BagMessage) -> bytes:
        msg = deserialize(message.data, message.msgtype)
        header = getattr(msg, "header", None)
        stamp = getattr(header, "stamp", None)
        if stamp is None or not hasattr(stamp, "nanosec"):
            self.stamp_ns(message.log_time_ns, message.log_time_ns)  # the origin is the first message either way
            return message.data
        recorded = stamp.sec * 1_000_000_000 + stamp.nanosec
        if recorded == 0:
            return message.data
        new = self.stamp_ns(recorded, message.log_time_ns)
        stamp.sec, stamp.nanosec = divmod(new, 1_000_000_000)
        return serialize(msg, message.msgtype)


def paced(messages: Iterable[BagMessage], clock: ReplayClock) -> Iterator[tuple[BagMessage, float]]:
    for message in messages:
        yield message, clock.wait_for(message.log_time_ns)

