"""Bag writing/reading with rosbags (MCAP), the episode recorder's bag layout, and crash
durability: a recorder process is SIGKILLed mid-episode and what it flushed is recovered."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from cell.recording.bag_io import (BagError, BagReader, DurableBagWriter, deserialize, find_bags,
                                      is_unfinished_bag, recover_bag, serialize, typestore)
from cell.recording.episodes import EVENTS_TOPIC, decode_event
from cell.recording.recorder import EpisodeRecorder, RecorderConfig, RecorderStateError

T = typestore().types
TOPICS = {"/camera/image_raw": "sensor_msgs/msg/Image",
          "/setpoint_delta": "geometry_msgs/msg/Vector3Stamped",
          "/recorder/events": "std_msgs/msg/String"}


def image_bytes(index: int, stamp_ns: int, height: int = 18, width: int = 32) -> bytes:
    pixels = (np.arange(height * width * 3, dtype=np.int64) * (index + 3) % 251).astype(np.uint8)
    msg = T["sensor_msgs/msg/Image"](
        header=T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](
            sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id="camera"),
        height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3, data=pixels)
    return serialize(msg, "sensor_msgs/msg/Image")


def setpoint_bytes(stamp_ns: int, dx: float, dy: float) -> bytes:
    msg = T["geometry_msgs/msg/Vector3Stamped"](
        header=T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](
            sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id="teleop"),
        vector=T["geometry_msgs/msg/Vector3"](x=dx, y=dy, z=0.0))
    return serialize(msg, "geometry_msgs/msg/Vector3Stamped")


def test_durable_writer_round_trip_is_a_standard_rosbag2_mcap(tmp_path):
    bag = tmp_path / "bag"
    writer = DurableBagWriter(bag, TOPICS, flush_interval_s=0.05)
    sent = [image_bytes(i, 10**9 + i * 33_000_000) for i in range(5)]
    for i, data in enumerate(sent):
        writer.write("/camera/image_raw", 2 * 10**9 + i, data)
    writer.write("/setpoint_delta", 2 * 10**9 + 10, setpoint_bytes(10**9, 0.01, -0.02))
    writer.set_custom_data("ibc_ros.outcome", "success")
    writer.close()

    assert (bag / "metadata.yaml").is_file() and (bag / "bag.mcap").is_file()
    with Reader(bag) as plain:  # rosbags' own reader, no project code involved
        assert plain.message_count == 6
        assert {c.topic: c.msgtype for c in plain.connections} == TOPICS
        assert all(c.digest.startswith("RIHS01_") for c in plain.connections)
    with BagReader(bag) as reader:
        assert reader.custom_data == {"ibc_ros.outcome": "success"}
        got = list(reader.messages(["/camera/image_raw"]))
        assert [m.data for m in got] == sent
        assert [m.log_time_ns for m in got] == [2 * 10**9 + i for i in range(5)]
        sp = deserialize(next(reader.messages(["/setpoint_delta"])).data, "geometry_msgs/msg/Vector3Stamped")
        assert (sp.vector.x, sp.vector.y) == (0.01, -0.02)


def test_writer_rejects_unknown_topics_and_types(tmp_path):
    with pytest.raises(BagError, match="unknown message type"):
        DurableBagWriter(tmp_path / "a", {"/x": "no_pkg/msg/Nope"})
    assert not (tmp_path / "a").exists()
    writer = DurableBagWriter(tmp_path / "b", TOPICS)
    with pytest.raises(BagError, match="not one of this bag's topics"):
        writer.write("/other", 1, b"")
    writer.close()


def test_recorder_writes_one_bag_per_episode_with_events_and_outcomes(tmp_path):
    clock = iter(range(10**9, 10**12, 1000))
    recorder = EpisodeRecorder(RecorderConfig(output_dir=str(tmp_path), flush_interval_s=0.05), TOPICS,
                               clock_ns=lambda: next(clock))
    assert not recorder.offer("/camera/image_raw", 1, image_bytes(0, 1)), "nothing recorded between episodes"
    with pytest.raises(RecorderStateError):
        recorder.stop()
    outcomes = []
    for episode, finish in enumerate(["success", "failure", "discard"]):
        recorder.start()
        with pytest.raises(RecorderStateError):
            recorder.start()
        for i in range(3):
            assert recorder.offer("/camera/image_raw", next(clock), image_bytes(i, 10**9 + i))
        if finish == "success":
            recorder.mark_success()
        (recorder.discard if finish == "discard" else recorder.stop)()
        outcomes.append({"success": "success", "failure": "failure", "discard": "discarded"}[finish])
    recorder.close()
    assert recorder.errors == [] and recorder.dropped == 0

    finished, unfinished = find_bags([tmp_path])
    assert [b.name for b in finished] == ["episode_000000", "episode_000001", "episode_000002"]
    assert unfinished == []
    for bag, outcome in zip(finished, outcomes):
        with BagReader(bag) as reader:
            assert reader.custom_data["ibc_ros.outcome"] == outcome
            events = [decode_event(deserialize(m.data, m.msgtype).data)["event"]
                      for m in reader.messages(["/" + EVENTS_TOPIC])]
            assert events[0] == "start" and events[-1] == ("discard" if outcome == "discarded" else "stop")
            assert ("success" in events) == (outcome == "success")
            assert len(list(reader.messages(["/camera/image_raw"]))) == 3

    # A new recorder on the same folder resumes numbering.
    again = EpisodeRecorder(RecorderConfig(output_dir=str(tmp_path)), TOPICS)
    assert again.start().index == 3
    again.close()


class StalledDiskRecorder(EpisodeRecorder):
    """The writer thread blocks until released: a disk that stops keeping up."""

    def __init__(self, *args, **kwargs):
        self.released = threading.Event()
        super().__init__(*args, **kwargs)

    def _handle(self, writer, item):
        self.released.wait()
        return super()._handle(writer, item)


def test_recorder_drops_and_counts_when_the_writer_falls_behind(tmp_path):
    recorder = StalledDiskRecorder(RecorderConfig(output_dir=str(tmp_path), max_queued_messages=50), TOPICS)
    recorder.start()
    while recorder.pending() > 1:  # the writer took the open-bag item and is stuck on it
        time.sleep(0.001)
    data = image_bytes(0, 1)
    accepted = [recorder.offer("/camera/image_raw", 10**9 + i, data) for i in range(200)]
    recorder.released.set()
    recorder.close()
    # The start event waits in the queue too, so 49 images fit before dropping starts.
    assert accepted.count(True) == 49 and recorder.dropped == 151
    with BagReader(tmp_path / "episode_000000") as reader:
        assert len(list(reader.messages(["/camera/image_raw"]))) == 49


KILLED_RECORDER = """
    import sys, time
    sys.path.insert(0, {repo!r})
    from tests.test_record_bag_io import TOPICS, image_bytes
    from cell.recording.recorder import EpisodeRecorder, RecorderConfig
    recorder = EpisodeRecorder(RecorderConfig(output_dir={out!r}, flush_interval_s=0.1), TOPICS)
    for episode in range(3):
        recorder.start()
        for i in range(40):
            recorder.offer("/camera/image_raw", time.time_ns(), image_bytes(i, 10**9 + i))
        if episode < 2:
            recorder.stop()
    while recorder.pending():
        time.sleep(0.01)
    time.sleep(0.5)  # several flush intervals with an idle queue
    print("written", recorder.written, flush=True)
    time.sleep(600)
"""


def test_sigkill_mid_episode_keeps_finished_episodes_and_recovers_the_flushed_part(tmp_path):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = textwrap.dedent(KILLED_RECORDER).format(repo=repo, out=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("written"), line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    finished, unfinished = find_bags([tmp_path])
    assert [b.name for b in finished] == ["episode_000000", "episode_000001"]
    assert [b.name for b in unfinished] == ["episode_000002"]
    with pytest.raises(BagError, match="unfinished"):
        BagReader(unfinished[0])
    for bag in finished:
        with BagReader(bag) as reader:
            assert reader.message_count == 40 + 2  # images + start/stop events

    saved = recover_bag(unfinished[0])
    assert saved == 40 + 1  # every image of the killed episode and its start event
    assert not is_unfinished_bag(unfinished[0])
    with Reader(unfinished[0]) as plain:
        assert plain.message_count == 41
    with BagReader(unfinished[0]) as reader:
        assert reader.custom_data == {"ibc_ros.recovered": "true"}
        payloads = [m.data for m in reader.messages(["/camera/image_raw"])]
        assert payloads == [image_bytes(i, 10**9 + i) for i in range(40)]
        events = [json.loads(deserialize(m.data, m.msgtype).data) for m in reader.messages(["/recorder/events"])]
        assert [e["event"] for e in events] == ["start"]


def test_recover_drops_a_torn_tail(tmp_path):
    bag = tmp_path / "bag"
    writer = DurableBagWriter(bag, TOPICS, flush_interval_s=1e-9)  # every message its own chunk
    for i in range(6):
        writer.write("/camera/image_raw", 10**9 + i, image_bytes(i, 10**9 + i))
    # Simulate a kill in the middle of writing the last chunk: cut the file inside it.
    mcap = bag / "bag.mcap"
    data = mcap.read_bytes()
    mcap.write_bytes(data[:-100])
    assert is_unfinished_bag(bag)
    assert recover_bag(bag) == 5
    with BagReader(bag) as reader:
        assert [m.data for m in reader.messages()] == [image_bytes(i, 10**9 + i) for i in range(5)]
