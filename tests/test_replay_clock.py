"""Replay pacing (ROS-free): each message is due at start + (log time - first log time) / rate.
Time is a simulated clock here, so nothing depends on the machine's load."""
from __future__ import annotations

import pytest

from ibc_ros.recording.bag_io import BagError, BagMessage
from ibc_ros.recording.replay import ReplayClock, paced, parse_remaps


class SimulatedTime:
    def __init__(self, start: float = 100.0):
        self.now = start
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("rate", [0.5, 1.0, 4.0])
def test_messages_are_released_at_their_original_spacing_divided_by_rate(rate):
    time = SimulatedTime()
    clock = ReplayClock(rate, now=lambda: time.now, sleep=time.sleep)
    log_times = [7_000_000_000 + int(dt * 1e9) for dt in (0.0, 0.033, 0.066, 0.2, 0.2, 1.5)]
    messages = [BagMessage("/t", "std_msgs/msg/String", t, b"") for t in log_times]
    released = []
    for message, lateness in paced(messages, clock):
        released.append(time.now)
        assert lateness == pytest.approx(0.0)
    expected = [100.0 + (t - log_times[0]) / 1e9 / rate for t in log_times]
    assert released == pytest.approx(expected)


def test_a_slow_consumer_is_not_slept_for_and_lateness_is_reported():
    time = SimulatedTime()
    clock = ReplayClock(1.0, now=lambda: time.now, sleep=time.sleep)
    assert clock.wait_for(0) == 0.0
    time.now += 0.5                              # publishing took 0.5 s
    assert clock.wait_for(100_000_000) == pytest.approx(0.4)   # due at +0.1 s: 0.4 s late
    assert time.sleeps == []


def test_bad_arguments():
    with pytest.raises(ValueError, match="rate"):
        ReplayClock(0.0)
    assert parse_remaps(["/a:=/b"]) == {"/a": "/b"}
    with pytest.raises(BagError, match="FROM:=TO"):
        parse_remaps(["/a=/b"])
