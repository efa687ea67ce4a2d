"""Corrupt recordings reaching the bag -> dataset converter (real rosbag2 MCAP bags written by the
project's recorder; the SIGKILL/torn-tail cases are tests/test_record_bag_io.py and
tests/test_record_node.py): a NaN setpoint is refused; a bag with damaged bytes is refused by
name (the recorder writes MCAP chunk CRCs); neither leaves files behind (docs/RELIABILITY.md)."""
from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from ibc_core.data.episodes import DatasetError, iter_episodes
from ibc_ros.recording.bag_io import BagError, find_bags
from ibc_ros.recording.bag_to_dataset import convert_bags
from ibc_ros.recording.recorder import EpisodeRecorder, RecorderConfig
from tests.test_record_bag_io import TOPICS
from tests.test_record_converter import SPEC, record_episode


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
        convert_bags([tmp_path / "bags"], tmp_path / "data", SPEC, "t", 0.1)
    assert bags[1].name in str(error.value)
    assert not (tmp_path / "data").exists()


def test_non_finite_setpoint_in_a_bag_is_refused(tmp_path):
    record(tmp_path / "bags", [[(0.01, 0.0), (math.nan, 0.0), (0.01, 0.0)]])
    with pytest.raises((BagError, DatasetError), match="NaN or inf"):
        convert_bags([tmp_path / "bags"], tmp_path / "data", SPEC, "t", 0.1)


def test_non_finite_setpoint_in_a_bag_writes_nothing(tmp_path):
    record(tmp_path / "bags", [[(0.01, 0.0), (math.nan, 0.0), (0.01, 0.0)]])
    with pytest.raises((BagError, DatasetError)):
        convert_bags([tmp_path / "bags"], tmp_path / "data", SPEC, "t", 0.1)
    assert not (tmp_path / "data").exists()


def test_damage_anywhere_is_refused_by_name_or_harmless(tmp_path):
    """64 damaged bytes at 25 evenly spaced offsets of a recorded bag: every conversion either
    refuses naming the bag or yields exactly the clean images (the bytes hit index records the
    reader does not need) - never silently different data."""
    bags = record(tmp_path / "clean", [[(0.01, 0.0)] * 5, [(0.0, 0.01)] * 5])
    convert_bags([tmp_path / "clean"], tmp_path / "clean_data", SPEC, "t", 0.1)
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
            convert_bags([work], tmp_path / f"data_{i}", SPEC, "t", 0.1)
        except BagError as error:
            assert bags[1].name in str(error)
            assert not (tmp_path / f"data_{i}").exists()
            refused += 1
            continue
        got = [e.observations["rgb"] for e in iter_episodes(tmp_path / f"data_{i}")]
        assert len(got) == len(clean) and all(np.array_equal(a, b) for a, b in zip(got, clean)), i
    assert refused >= 20, refused   # the messages fill most of the file (22 of 25 measured)
