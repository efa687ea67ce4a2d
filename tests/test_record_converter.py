"""Bag -> dataset conversion: episode splitting, image pairing by stamp, the same preprocessing
as the policy node, and bags from another rosbag2 writer (rosbags' sqlite3 storage holding a
whole session with many episodes under a namespace, as `ros2 bag record` would write it)."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import StoragePlugin, Writer

from cell.paths import share_file
from ibc_core.config_io import ConfigError
from ibc_core.data.episodes import DatasetWriter, iter_episodes, read_meta
from ibc_core.data.preprocess import ImageSpec, preprocess_image
from cell.recording.bag_io import BagError, deserialize, serialize, typestore
from cell.images import image_to_rgb
from cell.recording.bag_to_dataset import add_from_bags_subcommand, convert_bags, pair_with_images
from cell.recording.episodes import encode_event, split_episodes
from cell.recording.recorder import EpisodeRecorder, RecorderConfig
from tests.test_record_bag_io import TOPICS, image_bytes, setpoint_bytes

SPEC = ImageSpec(height=9, width=16, crop=(0.0, 0.0, 1.0, 1.0))
FRAME_NS = 33_000_000
STEP_NS = 200_000_000


def test_pairing_takes_the_newest_image_at_or_before_each_stamp():
    images = np.array([100, 200, 300, 400])
    actions = np.array([50, 100, 199, 200, 250, 1000])
    assert pair_with_images(actions, images).tolist() == [-1, 0, 0, 1, 1, 3]


def test_split_episodes_outcomes():
    def ev(kind, episode, t):
        return t, {"event": kind, "episode": episode, "time_ns": t}
    events = [ev("start", 0, 1), ev("success", 0, 2), ev("stop", 0, 3),
              ev("start", 1, 4), ev("stop", 1, 5),
              ev("start", 2, 6), ev("discard", 2, 7),
              ev("start", 3, 8),                       # recorder restarted: no stop
              ev("start", 4, 9), ev("success", 4, 10)]  # bag ends mid-episode
    spans = split_episodes(events, bag_end_ns=11)
    assert [(s.episode, s.start_ns, s.stop_ns, s.outcome) for s in spans] == [
        (0, 1, 3, "success"), (1, 4, 5, "failure"), (2, 6, 7, "discarded"),
        (3, 8, 9, "unfinished"), (4, 9, 11, "unfinished")]
    assert [s.kept for s in spans] == [True, True, False, False, False]


def test_bgr_images_are_converted_to_rgb():
    T = typestore().types
    data = np.arange(2 * 3 * 3, dtype=np.uint8)
    msg = T["sensor_msgs/msg/Image"](header=T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id=""),
        height=2, width=3, encoding="bgr8", is_bigendian=0, step=9, data=data)
    assert np.array_equal(image_to_rgb(msg), data.reshape(2, 3, 3)[:, :, ::-1])
    msg.encoding = "mono8"
    with pytest.raises(ValueError, match="mono8"):
        image_to_rgb(msg)


def record_episode(recorder: EpisodeRecorder, clock: list[int], actions: list[tuple[float, float]],
                   finish: str, image_offset: int) -> None:
    """Images at 30 Hz; each setpoint is stamped with the image 2 frames back (processing delay)."""
    recorder.start()
    frame = 0
    for dx, dy in actions:
        for _ in range(6):  # 6 frames per 5 Hz step
            clock[0] += FRAME_NS
            recorder.offer("/camera/image_raw", clock[0], image_bytes(image_offset + frame, clock[0]))
            frame += 1
        used_stamp = clock[0] - 2 * FRAME_NS
        clock[0] += 1
        recorder.offer("/setpoint_delta", clock[0], setpoint_bytes(used_stamp, dx, dy))
    clock[0] += 1
    if finish == "success":
        recorder.mark_success()
    (recorder.discard if finish == "discard" else recorder.stop)()


def expected_rgb(index: int) -> np.ndarray:
    msg = deserialize(image_bytes(index, 0), "sensor_msgs/msg/Image")
    return preprocess_image(image_to_rgb(msg), SPEC)


def test_convert_recorder_bags(tmp_path):
    clock = [10**9]
    recorder = EpisodeRecorder(RecorderConfig(output_dir=str(tmp_path / "bags")), TOPICS,
                               clock_ns=lambda: clock[0])
    rng = np.random.default_rng(0)
    plans = [("success", rng.uniform(-0.05, 0.05, (7, 2))), ("discard", rng.uniform(-0.05, 0.05, (4, 2))),
             ("failure", rng.uniform(-0.05, 0.05, (5, 2)))]
    for i, (finish, actions) in enumerate(plans):
        record_episode(recorder, clock, [tuple(a) for a in actions], finish, image_offset=100 * i)
    recorder.close()

    report = convert_bags([tmp_path / "bags"], tmp_path / "data", SPEC)   # task: the one the recorder stored
    assert report.bags == 3 and report.episodes_written == 2 and report.steps_written == 12
    assert report.outcomes == {"success": 1, "discarded": 1, "failure": 1}
    assert report.steps_without_image == 0
    assert report.max_image_age_s == 0.0  # every setpoint carries the stamp of a recorded frame
    meta = read_meta(tmp_path / "data")
    assert meta["task"] == RecorderConfig().task
    assert meta["observation_keys"] == ["rgb"] and meta["control_hz"] == 5.0
    assert meta["image_spec"] == {"height": 9, "width": 16, "crop": [0.0, 0.0, 1.0, 1.0]}
    assert meta["action_low"] == [-0.1, -0.1] and meta["action_high"] == [0.1, 0.1]
    episodes = list(iter_episodes(tmp_path / "data"))
    for episode, (finish, actions), offset in zip(episodes, [plans[0], plans[2]], [0, 200]):
        assert episode.success == (finish == "success")
        np.testing.assert_array_equal(episode.actions, actions.astype(np.float32))
        # Step t was decided on frame 6t+3 of the episode (2 frames before the newest).
        for t in range(len(actions)):
            np.testing.assert_array_equal(episode.observations["rgb"][t], expected_rgb(offset + 6 * t + 3))


def write_session_sqlite3(path, episodes: list[tuple[str, np.ndarray]]) -> None:
    """One continuous sqlite3 bag holding several episodes under the namespace /cell1,
    written with rosbags' sqlite3 storage (not the project's writer)."""
    T = typestore().types
    topics = {"/cell1/camera/image_raw": "sensor_msgs/msg/Image",
              "/cell1/setpoint_delta": "geometry_msgs/msg/Vector3Stamped",
              "/cell1/recorder/events": "std_msgs/msg/String",
              "/cell1/joint_states": "sensor_msgs/msg/JointState"}
    with Writer(path, version=8, storage_plugin=StoragePlugin.SQLITE3) as writer:
        conns = {t: writer.add_connection(t, m, typestore=typestore()) for t, m in topics.items()}
        now = 5 * 10**9
        frame = 0

        def event(kind, episode):
            message = T["std_msgs/msg/String"](data=encode_event(kind, episode, now))
            writer.write(conns["/cell1/recorder/events"], now, serialize(message, "std_msgs/msg/String"))
        for episode, (finish, actions) in enumerate(episodes):
            now += STEP_NS
            event("start", episode)
            for dx, dy in actions:
                for _ in range(6):
                    now += FRAME_NS
                    writer.write(conns["/cell1/camera/image_raw"], now + 5_000_000, image_bytes(frame, now))
                    frame += 1
                writer.write(conns["/cell1/setpoint_delta"], now + 7_000_000, setpoint_bytes(now, dx, dy))
            now += STEP_NS
            if finish == "success":
                event("success", episode)
            event("discard" if finish == "discard" else "stop", episode)
            # Between episodes the operator moves the arm back: setpoints outside any episode.
            writer.write(conns["/cell1/setpoint_delta"], now + 1, setpoint_bytes(now, 0.05, 0.05))


def test_convert_a_multi_episode_sqlite3_session_bag(tmp_path):
    rng = np.random.default_rng(1)
    episodes = [("success", rng.uniform(-0.1, 0.1, (4, 2))), ("discard", rng.uniform(-0.1, 0.1, (3, 2))),
                ("success", rng.uniform(-0.1, 0.1, (5, 2)))]
    write_session_sqlite3(tmp_path / "session", episodes)
    assert (tmp_path / "session" / "session.db3").is_file()

    parser = argparse.ArgumentParser()
    add_from_bags_subcommand(parser.add_subparsers())
    words = ["from-bags", str(tmp_path / "session"), "--out", str(tmp_path / "data"), "--height", "9", "--width", "16"]
    # Its start events carry no task (another recorder's session): the converter asks for one.
    unnamed = parser.parse_args(words)
    with pytest.raises(SystemExit, match="the bags name no task"):
        unnamed.func(unnamed)
    args = parser.parse_args(words + ["--task", "push_pixels_real"])
    assert args.func(args) == 0
    converted = list(iter_episodes(tmp_path / "data"))
    assert len(converted) == 2
    frames_before = [0, 4 * 6 + 3 * 6]
    for episode, (_, actions), first in zip(converted, [episodes[0], episodes[2]], frames_before):
        np.testing.assert_array_equal(episode.actions, actions.astype(np.float32))
        for t in range(len(actions)):  # the setpoint carries the stamp of the newest frame
            np.testing.assert_array_equal(episode.observations["rgb"][t], expected_rgb(first + 6 * t + 5))


def test_bad_input_changes_nothing(tmp_path):
    with pytest.raises(BagError, match="does not exist"):
        convert_bags([tmp_path / "missing"], tmp_path / "data", SPEC, "t")
    recorder = EpisodeRecorder(RecorderConfig(output_dir=str(tmp_path / "bags")), TOPICS)
    recorder.start()
    recorder.discard()
    recorder.close()
    with pytest.raises(BagError, match="no usable episodes"):
        convert_bags([tmp_path / "bags"], tmp_path / "data", SPEC, "t")
    assert not (tmp_path / "data").exists()


def test_a_rate_other_than_the_cells_is_refused_before_any_bag_is_read(tmp_path):
    """Demonstrations are stored at the cell's control period (config/timing.yaml): appending them
    to a dataset of another rate, or executing them through a controller YAML that sets its own
    rate, is refused with the field, the value and the owner file named."""
    DatasetWriter(tmp_path / "data", {"task": "t", "control_hz": 10.0})
    before = (tmp_path / "data" / "meta.json").read_text()
    with pytest.raises(BagError, match=r"meta.json control_hz 10 disagrees with the cell's timing in "
                                       r"\S*timing.yaml \(control_period_s 0.2 = 5 Hz"):
        convert_bags([tmp_path / "missing"], tmp_path / "data", SPEC, "t")
    assert (tmp_path / "data" / "meta.json").read_text() == before

    controller = yaml.safe_load(share_file("config", "controller.yaml").read_text())
    bad = tmp_path / "controller_50hz.yaml"
    bad.write_text(yaml.safe_dump({**controller, "rate_hz": 50.0}))
    parser = argparse.ArgumentParser()
    add_from_bags_subcommand(parser.add_subparsers())
    args = parser.parse_args(["from-bags", str(tmp_path / "missing"), "--out", str(tmp_path / "new"),
                              "--controller-config", str(bad)])
    with pytest.raises(ConfigError, match=r"controller_50hz.yaml: ControllerConfig: rate_hz 50 disagrees .*"
                                          r"controller_rate_hz 100\): leave rate_hz out or make it 100"):
        args.func(args)
    assert not (tmp_path / "new").exists()


def test_the_dataset_task_comes_from_the_bags_unless_given(tmp_path):
    """Episodes recorded for two tasks are refused together (naming both) unless --task says
    which name the dataset takes; one task's bags name the dataset after it."""
    clock = [10**9]
    for task in ("push_pixels", "push_pixels_real"):
        recorder = EpisodeRecorder(RecorderConfig(output_dir=str(tmp_path / task), task=task), TOPICS,
                                   clock_ns=lambda: clock[0])
        record_episode(recorder, clock, [(0.01, 0.0), (0.0, 0.01)], "success", image_offset=0)
        recorder.close()
    with pytest.raises(BagError, match=r"several tasks \['push_pixels', 'push_pixels_real'\]"):
        convert_bags([tmp_path / "push_pixels", tmp_path / "push_pixels_real"], tmp_path / "mixed", SPEC)
    assert not (tmp_path / "mixed").exists()   # refused before anything is written
    convert_bags([tmp_path / "push_pixels"], tmp_path / "sim", SPEC)
    assert read_meta(tmp_path / "sim")["task"] == "push_pixels"
    convert_bags([tmp_path / "push_pixels", tmp_path / "push_pixels_real"], tmp_path / "named", SPEC, "pushing")
    assert read_meta(tmp_path / "named")["task"] == "pushing"
