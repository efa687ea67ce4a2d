"""Corrupt recordings reaching the bag -> dataset converter (real rosbag2 MCAP bags written by the
project's recorder; the SIGKILL/torn-tail cases are tests/test_record_bag_io.py and
tests/test_record_node.py): a malformed frame or a NaN setpoint is skipped and counted with its
bag, topic and time while the rest converts; absurd setpoints are stored as the action the
controller's envelope executed; a bag with damaged bytes is refused by name (the recorder writes
MCAP chunk CRCs) and leaves no files behind (docs/RELIABILITY.md)."""
from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from ibc_core.data.episodes import iter_episodes, read_meta
from cell.control.config import load_controller_config
from cell.control.envelope import SafetyEnvelope
from cell.recording.bag_io import BagError, deserialize, find_bags, serialize
from cell.recording.bag_to_dataset import convert_bags
from cell.recording.recorder import EpisodeRecorder, RecorderConfig
from tests.test_record_bag_io import TOPICS, image_bytes, setpoint_bytes
from tests.test_record_converter import FRAME_NS, SPEC, expected_rgb, record_episode


def record(root, plans) -> list:
    clock = [10**9]
    recorder = EpisodeRecorder(RecorderConfig(output_dir=str(root)), TOPICS, clock_ns=lambda: clock[0])
    for i, actions in enumerate(plans):
        record_episode(recorder, clock, actions, "success", image_offset=100 * i)
    recorder.close()
    finished, unfinished = find_bags([root])
    assert not unfinished
    return finished


def test_bag_with_damaged_bytes_is_refused_by_name_and_nothing_is_written(tmp_path):
    bags = record(tmp_path / "bags", [[(0.01, 0.0)] * 5, [(0.0, 0.01)] * 5])
    mcap = next(bags[1].glob("*.mcap"))
    data = bytearray(mcap.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(range(64))  # a disk/transfer error inside image data
    mcap.write_bytes(bytes(data))
    with pytest.raises(BagError) as error:
        convert_bags([tmp_path / "bags"], tmp_path / "data", SPEC, "t")
    assert bags[1].name in str(error.value)
    assert not (tmp_path / "data").exists()


def test_non_finite_setpoint_is_refused_as_a_step_and_counted(tmp_path):
    """The controller rejects a NaN setpoint (nothing moved), so the converter refuses that step,
    names it, and converts the rest of the episode."""
    (bag,) = record(tmp_path / "bags", [[(0.01, 0.0), (math.nan, 0.0), (0.02, 0.0)]])
    report = convert_bags([tmp_path / "bags"], tmp_path / "data", SPEC, "t")
    (episode,) = list(iter_episodes(tmp_path / "data"))
    np.testing.assert_array_equal(episode.actions, np.array([[0.01, 0.0], [0.02, 0.0]], np.float32))
    (dropped,) = report.dropped
    assert (dropped.bag, dropped.topic) == (str(bag), "/setpoint_delta") and "finite" in dropped.reason
    assert dropped.log_time_ns > 0 and report.steps_refused == 1
    assert "1 setpoint refused" in report.summary() and bag.name in report.summary()


def test_absurd_setpoints_become_the_action_the_controller_executed(tmp_path):
    """A recorded (1e9, -1e9) is stored as the controller's envelope clamps it (the action that was
    executed), never as itself; the report says how many were clipped. The clamp is the
    controller's own SafetyEnvelope.clamp_delta, with the same controller config as meta.json."""
    record(tmp_path / "bags", [[(0.01, 0.0), (1e9, -1e9), (0.05, -0.2), (0.0, 0.03)]])
    config = load_controller_config()
    report = convert_bags([tmp_path / "bags"], tmp_path / "data", SPEC, "t", config)
    (episode,) = list(iter_episodes(tmp_path / "data"))
    envelope = SafetyEnvelope(config)
    executed = [envelope.clamp_delta(a) for a in [(0.01, 0.0), (1e9, -1e9), (0.05, -0.2), (0.0, 0.03)]]
    np.testing.assert_array_equal(episode.actions, np.array(executed, np.float32))
    meta = read_meta(tmp_path / "data")
    assert np.all(episode.actions <= np.array(meta["action_high"], np.float32))
    assert np.all(episode.actions >= np.array(meta["action_low"], np.float32))
    assert meta["action_high"] == [config.max_setpoint_step] * 2
    assert report.actions_clipped == 2 and episode.info["actions_clipped"] == 2
    assert "2 actions clipped" in report.summary()


def malformed_frame(stamp_ns: int) -> bytes:
    """A well-formed CDR Image whose header claims one row more than its data holds (the camera
    driver's fault, recorded as it travelled): 'cannot reshape' in a plain numpy conversion."""
    msg = deserialize(image_bytes(0, stamp_ns), "sensor_msgs/msg/Image")
    msg.height += 1
    return serialize(msg, "sensor_msgs/msg/Image")


def test_a_malformed_frame_is_skipped_and_counted_and_every_bag_converts(tmp_path):
    clock = [10**9]
    recorder = EpisodeRecorder(RecorderConfig(output_dir=str(tmp_path / "bags")), TOPICS, clock_ns=lambda: clock[0])
    record_episode(recorder, clock, [(0.01, 0.0)] * 4, "success", image_offset=0)
    recorder.start()
    clock[0] += FRAME_NS
    recorder.offer("/camera/image_raw", clock[0], image_bytes(7, clock[0]))
    clock[0] += FRAME_NS
    bad_time = clock[0]
    recorder.offer("/camera/image_raw", bad_time, malformed_frame(bad_time))
    clock[0] += 1
    recorder.offer("/setpoint_delta", clock[0], setpoint_bytes(bad_time, 0.02, 0.0))  # paired with the good frame
    clock[0] += 1
    recorder.stop()
    recorder.close()
    bags, _ = find_bags([tmp_path / "bags"])

    report = convert_bags([tmp_path / "bags"], tmp_path / "data", SPEC, "t")
    episodes = list(iter_episodes(tmp_path / "data"))
    assert [len(e) for e in episodes] == [4, 1] and report.episodes_written == 2
    (dropped,) = report.dropped
    assert (dropped.bag, dropped.topic, dropped.log_time_ns) == (str(bags[1]), "/camera/image_raw", bad_time)
    assert "does not match its header" in dropped.reason
    np.testing.assert_array_equal(episodes[1].observations["rgb"][0], expected_rgb(7))
    summary = report.summary()
    assert "1 bad message" in summary and bags[1].name in summary and "/camera/image_raw" in summary


def test_damage_anywhere_is_refused_by_name_or_harmless(tmp_path):
    """64 damaged bytes at 25 evenly spaced offsets of a recorded bag: every conversion either
    refuses naming the bag or yields exactly the clean images (the bytes hit index records the
    reader does not need) - never silently different data."""
    bags = record(tmp_path / "clean", [[(0.01, 0.0)] * 5, [(0.0, 0.01)] * 5])
    convert_bags([tmp_path / "clean"], tmp_path / "clean_data", SPEC, "t")
    clean = [e.observations["rgb"] for e in iter_episodes(tmp_path / "clean_data")]
    size = next(bags[1].glob("*.mcap")).stat().st_size
    refused = 0
    for i in range(25):
        work = tmp_path / f"copy_{i}"
        shutil.copytree(tmp_path / "clean", work)
        mcap = next((work / bags[1].name).glob("*.mcap"))
        data = bytearray(mcap.read_bytes())
        at = int(size * (i + 0.5) / 25)
        data[at:at + 64] = bytes(range(64))
        mcap.write_bytes(bytes(data))
        try:
            convert_bags([work], tmp_path / f"data_{i}", SPEC, "t")
        except BagError as error:
            assert bags[1].name in str(error)
            assert not (tmp_path / f"data_{i}").exists()
            refused += 1
            continue
        got = [e.observations["rgb"] for e in iter_episodes(tmp_path / f"data_{i}")]
        assert len(got) == len(clean) and all(np.array_equal(a, b) for a, b in zip(got, clean)), i
    assert refused >= 20, refused   # the messages fill most of the file (22 of 25 measured)
