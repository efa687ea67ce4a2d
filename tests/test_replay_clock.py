"""Replay pacing (ROS-free): each message is due at start + (log time - first log time) / rate,
and --restamp moves header stamps onto the same time line. Time is a simulated clock here, so
nothing depends on the machine's load."""
from __future__ import annotations

import numpy as np
import pytest

from cell.recording.bag_io import BagError, BagMessage, deserialize, serialize, typestore
from cell.recording.replay import ReplayClock, Restamper, paced
from ibc_cli.replay import parse_remaps
from ibc_cli.replay import main as replay_main


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
    with pytest.raises(SystemExit, match="--subscribers must be 0 or more"):
        replay_main(["no_such_bag", "--subscribers", "-1"])


def _message(msgtype: str, log_time_ns: int, **fields) -> BagMessage:
    return BagMessage("/t", msgtype, log_time_ns, serialize(typestore().types[msgtype](**fields), msgtype))


def _image(stamp_ns: int) -> dict:
    T = typestore().types
    header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9,
                                                                             nanosec=stamp_ns % 10**9), frame_id="cam")
    return {"header": header, "height": 1, "width": 2, "encoding": "rgb8", "is_bigendian": 0, "step": 6,
            "data": np.arange(6, dtype=np.uint8)}


@pytest.mark.parametrize("rate", [0.5, 1.0, 2.0])
def test_restamp_moves_header_stamps_to_wall_time_keeping_their_spacing(rate):
    wall = 1_800_000_000_000_000_000
    restamper = Restamper(rate, wall_ns=lambda: wall)
    log_times = [5_000_000_000, 5_100_000_000, 5_350_000_000]
    stamps = [t - 3_000_000 for t in log_times]          # captured 3 ms before they were logged
    for stamp, log_time in zip(stamps, log_times):
        out = deserialize(restamper.restamp(_message("sensor_msgs/msg/Image", log_time, **_image(stamp))),
                          "sensor_msgs/msg/Image")
        got = out.header.stamp.sec * 10**9 + out.header.stamp.nanosec
        assert got == wall + round((stamp - log_times[0]) / rate)
        assert out.header.frame_id == "cam" and out.data.tolist() == list(range(6))  # nothing else changes


def test_restamp_leaves_messages_without_a_stamp_unchanged():
    restamper = Restamper(1.0, wall_ns=lambda: 10**18)
    text = _message("std_msgs/msg/String", 1_000, data="no header")
    assert restamper.restamp(text) == text.data
    unset = _message("sensor_msgs/msg/Image", 2_000, **_image(0))
    assert restamper.restamp(unset) == unset.data
    with pytest.raises(ValueError, match="rate"):
        Restamper(0.0)


@pytest.mark.parametrize("rate", [0.5, 1.0, 2.0])
def test_restamped_frames_are_never_stamped_after_they_are_due(rate):
    """ibc-replay --restamp: stamps share the pacing clock's origin, so a slow first message (its
    decoding took 0.17 s in CI) cannot put every later stamp ahead of the wall clock - the policy
    refuses frames stamped more than 0.1 s in the future (tests/test_replay_policy.py[restamp]
    failed 2 of 5 runs that way)."""
    time = SimulatedTime()
    wall = [1_800_000_000_000_000_000]
    clock = ReplayClock(rate, now=lambda: time.now, sleep=lambda s: _advance(time, wall, s), wall_ns=lambda: wall[0])
    restamper = Restamper(rate, wall_ns=lambda: wall[0], clock=clock)
    log_times = [5_000_000_000, 5_100_000_000, 5_350_000_000]
    for i, log_time in enumerate(log_times):
        clock.wait_for(log_time)
        due_wall = wall[0]
        if i == 0:
            _advance(time, wall, 0.17)    # the first restamp is slow
        stamp = log_time - 3_000_000      # captured 3 ms before it was logged
        out = deserialize(restamper.restamp(_message("sensor_msgs/msg/Image", log_time, **_image(stamp))),
                          "sensor_msgs/msg/Image")
        got = out.header.stamp.sec * 10**9 + out.header.stamp.nanosec
        assert got == 1_800_000_000_000_000_000 + round((stamp - log_times[0]) / rate)
        assert got <= due_wall


def _advance(time: SimulatedTime, wall: list, seconds: float) -> None:
    """Both clocks move on together."""
    time.sleep(seconds)
    wall[0] += round(seconds * 1e9)
