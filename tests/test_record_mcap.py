"""The recorder's MCAP files as viewers (Foxglove) open them, and camera frames stored compressed.

Read with the `mcap` library (not the project's code, nor rosbags): every channel has its schema
(ros2msg, the full definition - enough to decode the messages with nothing else), and the summary
holds chunk indexes and statistics that agree with the messages; so does a killed recorder's
recovered bag. With image_format jpeg/png the recorder stores sensor_msgs/CompressedImage on
camera/image_raw/compressed as image_transport would: a recorder node over real DDS (PNG, pixel-
exact), and `ibc-data from-bags` on raw, PNG and JPEG recordings of the same traffic - the same
episodes and steps, PNG identical, JPEG within a PSNR bound that a pipeline error cannot meet."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from mcap.exceptions import McapError
from mcap.reader import make_reader
from mcap.records import Channel, Chunk, Schema
from mcap.stream_reader import StreamReader
from rclpy.duration import Duration
from rosbags.typesys import Stores, get_typestore, get_types_from_msg

from cell.images import compressed_image_to_rgb
from cell.paths import share_file
from cell.recording.bag_io import (BagReader, DurableBagWriter, deserialize, recover_bag, rgb_image_bytes,
                                   serialize, stamped_header, typestore)
from cell.recording.bag_to_dataset import convert_bags
from cell.recording.recorder import EpisodeRecorder, RecorderConfig
from cell.stack import load_stack, parse_arguments, resolve
from ibc_core.config_io import ConfigError, load_config
from ibc_core.data.episodes import iter_episodes
from ibc_core.data.preprocess import ImageSpec, preprocess_image
from tests.ros_client import RosClient, wait_for
from tests.ros_processes import running

TOPICS = {"/camera/image_raw": "sensor_msgs/msg/Image", "/joint_states": "sensor_msgs/msg/JointState",
          "/setpoint_delta": "geometry_msgs/msg/Vector3Stamped", "/ee_target": "geometry_msgs/msg/PoseStamped",
          "/recorder/events": "std_msgs/msg/String"}
FRAME_NS = 1_000_000_000 // 30
T = typestore().types
# JPEG (quality 95) fidelity bound, dataset frames against the raw recording's: 40 dB is an RMS
# error of 2.6 grey levels, about the sensor noise the frames already carry (sigma 2); these frames
# measure 43.6 dB, sim renders 51 dB (bench/recording.py). A pipeline error lands far below:
# a step paired with the previous step's frame measures 26 dB, swapped colour channels 15 dB.
JPEG_MIN_PSNR_DB = 40.0


def scene_frame(index: int, height: int = 180, width: int = 320) -> np.ndarray:
    """A table-like frame: shaded background, a green target ring, a red block that moves 3 px per
    frame, and sensor-like noise (sigma 2 grey levels), deterministic per index."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frame = np.stack([150 + 30 * y / height, 130 + 20 * x / width, 110 + 10 * (x + y) / (width + height)], -1)
    cv2.circle(frame, (width * 2 // 3, height // 2), height // 6, (40, 200, 60), 3)
    left, top = 10 + 3 * index % (width - 60), height // 3
    frame[top:top + height // 4, left:left + height // 4] = (200, 40, 30)
    noise = np.random.default_rng(index).normal(0.0, 2.0, frame.shape)
    return np.clip(frame + noise, 0, 255).astype(np.uint8)


def setpoint_bytes(stamp_ns: int, dx: float, dy: float) -> bytes:
    return serialize(T["geometry_msgs/msg/Vector3Stamped"](header=stamped_header(stamp_ns, "link_base"),
                                                           vector=T["geometry_msgs/msg/Vector3"](x=dx, y=dy, z=0.0)),
                     "geometry_msgs/msg/Vector3Stamped")


def side_topics(stamp_ns: int) -> list[tuple[str, bytes]]:
    """The 100 Hz topics, shaped as the nodes send them."""
    pose = T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=0.3, y=0.0, z=0.1),
                                       orientation=T["geometry_msgs/msg/Quaternion"](x=1.0, y=0.0, z=0.0, w=0.0))
    joints = T["sensor_msgs/msg/JointState"](header=stamped_header(stamp_ns, ""), name=[f"joint{i}" for i in range(1, 7)],
                                             position=np.linspace(0, 1, 6), velocity=np.zeros(0), effort=np.zeros(0))
    return [("/joint_states", serialize(joints, "sensor_msgs/msg/JointState")),
            ("/ee_target", serialize(T["geometry_msgs/msg/PoseStamped"](header=stamped_header(stamp_ns, "link_base"),
                                                                        pose=pose), "geometry_msgs/msg/PoseStamped"))]


def record_episode(out: Path, frames: int, **settings) -> tuple[EpisodeRecorder, Path]:
    """One kept episode through the recorder: 30 Hz frames (scene_frame), the 100 Hz topics
    every third frame, a setpoint stamped with every sixth frame."""
    clock = [10**9]
    recorder = EpisodeRecorder(RecorderConfig(output_dir=str(out), flush_interval_s=0.05, **settings), TOPICS,
                               clock_ns=lambda: clock[0])
    episode = recorder.start()
    for index in range(frames):
        stamp = 10**9 + index * FRAME_NS
        clock[0] = stamp + 1000
        assert recorder.offer("/camera/image_raw", clock[0], rgb_image_bytes(scene_frame(index), stamp))
        if index % 3 == 0:
            for topic, data in side_topics(stamp):
                assert recorder.offer(topic, clock[0], data)
        if index % 6 == 5:
            assert recorder.offer("/setpoint_delta", clock[0], setpoint_bytes(stamp, 0.01 * (index % 5), -0.004))
    clock[0] += FRAME_NS
    recorder.stop()
    recorder.close()
    assert recorder.errors == [] and recorder.dropped == 0
    return recorder, episode.path


def mcap_file(bag: Path) -> Path:
    (path,) = bag.glob("*.mcap")
    return path


def check_viewer_ready(bag: Path, topics: dict[str, str], compression: str = "") -> dict[str, list]:
    """What Foxglove reads, checked with the mcap library: schema per channel (and the schema alone
    decodes its messages), chunk indexes and statistics consistent with every message. Returns the
    decoded messages per topic."""
    with mcap_file(bag).open("rb") as stream:
        reader = make_reader(stream, validate_crcs=True)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        assert summary is not None and summary.statistics is not None, "no summary section"
        stats = summary.statistics
        # Every channel: its topic and a ros2msg schema named after the message type, with data.
        assert {c.topic: summary.schemas[c.schema_id].name for c in summary.channels.values()} == topics
        for channel in summary.channels.values():
            schema = summary.schemas[channel.schema_id]
            assert channel.message_encoding == "cdr" and schema.encoding == "ros2msg" and schema.data
        # A viewer with only the file: the embedded definitions decode the messages.
        store = get_typestore(Stores.EMPTY)
        for schema in summary.schemas.values():
            store.register(get_types_from_msg(schema.data.decode(), schema.name))
        decoded: dict[str, list] = {topic: [] for topic in topics}
        log_times = []
        for schema, channel, message in reader.iter_messages():
            decoded[channel.topic].append(store.deserialize_cdr(message.data, schema.name))
            log_times.append(message.log_time)
        # Statistics agree with the messages.
        assert stats.message_count == len(log_times) > 0
        assert stats.channel_message_counts == {c.id: len(decoded[c.topic]) for c in summary.channels.values()}
        assert (stats.message_start_time, stats.message_end_time) == (min(log_times), max(log_times))
        assert (stats.channel_count, stats.schema_count) == (len(summary.channels), len(summary.schemas))
        # One index per chunk, each indexing messages; the time range viewers take from the chunk
        # indexes is the recording's (no message-less chunk stretching it).
        assert stats.chunk_count == len(summary.chunk_indexes) > 0
        for index in summary.chunk_indexes:
            assert index.message_index_offsets and index.compression == compression
            assert stats.message_start_time <= index.message_start_time <= index.message_end_time <= stats.message_end_time
        assert min(i.message_start_time for i in summary.chunk_indexes) == stats.message_start_time
        assert max(i.message_end_time for i in summary.chunk_indexes) == stats.message_end_time
        return decoded


@pytest.mark.parametrize("settings", [{}, {"compress": True}, {"image_format": "png"}, {"image_format": "jpeg"}],
                         ids=["raw", "raw_zstd", "png", "jpeg"])
def test_recordings_carry_schemas_and_a_summary_viewers_use(tmp_path, settings):
    recorder, bag = record_episode(tmp_path, 30, **settings)
    decoded = check_viewer_ready(bag, recorder.bag_topics, "zstd" if settings.get("compress") else "")
    camera = next(t for t in recorder.bag_topics if t.startswith("/camera/image_raw"))
    assert camera == ("/camera/image_raw/compressed" if "image_format" in settings else "/camera/image_raw")
    assert len(decoded[camera]) == 30 and len(decoded["/setpoint_delta"]) == 5
    assert [json.loads(m.data)["event"] for m in decoded["/recorder/events"]] == ["start", "stop"]
    if "image_format" in settings:
        codec = settings["image_format"]
        assert {m.format for m in decoded[camera]} == {f"rgb8; {codec} compressed bgr8"}
        assert [m.header.stamp.nanosec for m in decoded[camera]] == [(i * FRAME_NS) % 10**9 for i in range(30)]


def test_a_killed_writers_file_names_its_topics_first_and_recovers_viewer_ready(tmp_path):
    writer = DurableBagWriter(tmp_path / "bag", TOPICS, flush_interval_s=1e-9)   # every message flushed
    # Before any message: schema and channel records on disk, and no chunk (nothing to index).
    records = []
    with pytest.raises(McapError):   # no footer: the file ends where the writer is
        for record in StreamReader(str(mcap_file(tmp_path / "bag"))).records:
            records.append(record)
    assert {r.name for r in records if isinstance(r, Schema)} == set(TOPICS.values())
    assert {r.topic for r in records if isinstance(r, Channel)} == set(TOPICS)
    assert not any(isinstance(r, Chunk) for r in records)
    for index in range(8):
        writer.write("/camera/image_raw", 10**9 + index, rgb_image_bytes(scene_frame(index, 18, 32), 10**9 + index))
    writer.write("/setpoint_delta", 10**9 + 9, setpoint_bytes(10**9, 0.01, 0.0))
    # What a SIGKILL leaves now (tests/test_record_bag_io.py kills a real recorder process).
    shutil.copytree(tmp_path / "bag", tmp_path / "killed")
    writer.close()

    assert recover_bag(tmp_path / "killed") == 9
    decoded = check_viewer_ready(tmp_path / "killed", TOPICS)
    assert len(decoded["/camera/image_raw"]) == 8 and len(decoded["/setpoint_delta"]) == 1


def test_from_bags_gives_the_same_dataset_from_raw_png_and_jpeg_recordings(tmp_path):
    datasets, reports = {}, {}
    for image_format in ("raw", "png", "jpeg"):
        _, bag = record_episode(tmp_path / image_format, 60, image_format=image_format)
        reports[image_format] = convert_bags([bag], tmp_path / f"data_{image_format}", ImageSpec(), "push_pixels_real")
        (datasets[image_format],) = iter_episodes(tmp_path / f"data_{image_format}")
    raw, png, jpeg = (datasets[f] for f in ("raw", "png", "jpeg"))
    assert reports["raw"].steps_written == reports["png"].steps_written == reports["jpeg"].steps_written == 10
    assert not reports["jpeg"].dropped and reports["jpeg"].max_image_age_s == 0.0
    for episode in (png, jpeg):
        np.testing.assert_array_equal(episode.actions, raw.actions)
        assert episode.observations["rgb"].shape == raw.observations["rgb"].shape
    # The raw dataset is the frames sent, preprocessed as the policy does; PNG is identical to it.
    expected = np.stack([preprocess_image(scene_frame(6 * t + 5), ImageSpec()) for t in range(10)])
    np.testing.assert_array_equal(raw.observations["rgb"], expected)
    np.testing.assert_array_equal(png.observations["rgb"], expected)
    # JPEG: close to it; the bound rejects a step paired with the wrong frame or swapped colours.
    assert psnr(jpeg.observations["rgb"], expected) >= JPEG_MIN_PSNR_DB
    assert psnr(jpeg.observations["rgb"][1:], expected[:-1]) < JPEG_MIN_PSNR_DB
    assert psnr(jpeg.observations["rgb"][..., ::-1], expected) < JPEG_MIN_PSNR_DB


def psnr(got: np.ndarray, want: np.ndarray) -> float:
    mse = float(np.mean((got.astype(np.float64) - want.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0 ** 2 / mse)


def test_a_frame_no_codec_takes_is_stored_raw_and_the_rest_converts(tmp_path):
    clock = [10**9]
    recorder = EpisodeRecorder(RecorderConfig(output_dir=str(tmp_path / "bags"), image_format="jpeg"), TOPICS,
                               clock_ns=lambda: clock[0])
    recorder.start()
    for index in range(12):
        stamp = 10**9 + index * FRAME_NS
        clock[0] = stamp + 1000
        data = rgb_image_bytes(scene_frame(index, 36, 64), stamp)
        if index == 4:   # a mono8 frame: neither the policy nor the JPEG encoder take it
            mono = T["sensor_msgs/msg/Image"](header=stamped_header(stamp, "camera"), height=36, width=64,
                                              encoding="mono8", is_bigendian=0, step=64, data=np.zeros(36 * 64, np.uint8))
            data = serialize(mono, "sensor_msgs/msg/Image")
        recorder.offer("/camera/image_raw", clock[0], data)
        if index % 6 == 5:
            recorder.offer("/setpoint_delta", clock[0], setpoint_bytes(stamp, 0.01, 0.0))
    recorder.stop()
    recorder.close()
    assert recorder.errors == [] and recorder.stored_raw == 1 and "mono8" in recorder.stored_raw_reason

    bag = tmp_path / "bags" / "episode_000000"
    decoded = check_viewer_ready(bag, {**recorder.bag_topics, "/camera/image_raw": "sensor_msgs/msg/Image"})
    assert len(decoded["/camera/image_raw/compressed"]) == 11
    assert [m.encoding for m in decoded["/camera/image_raw"]] == ["mono8"]
    report = convert_bags([tmp_path / "bags"], tmp_path / "data", ImageSpec(9, 16), "push_pixels_real")
    assert report.steps_written == 2
    assert [(d.topic, "mono8" in d.reason) for d in report.dropped] == [("/camera/image_raw", True)]


def test_image_format_and_jpeg_quality_are_checked_naming_the_field():
    with pytest.raises(ConfigError, match=r"image_format: 'gif' is not one of \['raw', 'jpeg', 'png'\]"):
        load_config(RecorderConfig, {"image_format": "gif"})
    for quality in (0, 101):
        with pytest.raises(ConfigError, match=f"jpeg_quality must be within 1..100, got {quality}"):
            load_config(RecorderConfig, {"jpeg_quality": quality})
    with pytest.raises(ConfigError, match="image_format jpeg stores two topics under one name"):
        load_config(RecorderConfig, {"image_format": "jpeg", "topics": [
            "camera/image_raw sensor_msgs/msg/Image", "camera/image_raw/compressed sensor_msgs/msg/CompressedImage"]})
    # config/recorder.yaml: every field, at the dataclass defaults (raw frames, quality 95).
    params = yaml.safe_load(share_file("config", "recorder.yaml").read_text())["/**"]["ros__parameters"]
    assert load_config(RecorderConfig, params) == RecorderConfig()
    # record_demos image_format:= reaches the recorder; left empty, recorder.yaml decides.
    stack = load_stack("record_demos")
    for sim in ("true", "false"):
        nodes = {s.name: s for s in resolve(stack, parse_arguments(stack, [f"sim:={sim}", "image_format:=png"]))}
        assert nodes["recorder"].parameters["image_format"] == "png"
        nodes = {s.name: s for s in resolve(stack, parse_arguments(stack, [f"sim:={sim}"]))}
        assert "image_format" not in nodes["recorder"].parameters


NODE = str(Path(sys.executable).parent / "recorder_node")


@pytest.mark.ros
def test_recorder_node_refuses_a_bad_image_format_naming_it(tmp_path):
    for parameter, message in [("image_format:=gif", "image_format: 'gif' is not one of"),
                               ("jpeg_quality:=0", "jpeg_quality must be within 1..100")]:
        result = subprocess.run([NODE, "--ros-args", "-p", f"output_dir:={tmp_path}", "-p", parameter],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode != 0 and message in result.stdout + result.stderr, result.stderr[-2000:]
    assert not any(tmp_path.iterdir()), "a refused start wrote nothing"


@pytest.mark.ros
def test_recorder_node_stores_png_frames_over_dds_and_they_convert_pixel_exact(tmp_path):
    from geometry_msgs.msg import Vector3Stamped
    from sensor_msgs.msg import Image
    from std_srvs.srv import Trigger
    out = tmp_path / "demos"
    log = tmp_path / "recorder.log"
    sent = []   # (dx, dy, index of the frame the setpoint was computed from)
    with running([NODE, "--ros-args", "-p", f"output_dir:={out}", "-p", "image_format:=png"], log), \
            RosClient("record_png_driver") as client:
        images = client.publisher(Image, "camera/image_raw")
        setpoints = client.publisher(Vector3Stamped, "setpoint_delta")
        wait_for(lambda: images.get_subscription_count() and setpoints.get_subscription_count(), 60, "the recorder")
        assert client.call(Trigger, "recorder/start", Trigger.Request(), timeout=30).success
        for index in range(36):
            frame = scene_frame(index, 72, 128)
            msg = Image(height=72, width=128, encoding="rgb8", step=128 * 3, data=frame.tobytes())
            msg.header.stamp, msg.header.frame_id = client.now().to_msg(), str(index)
            images.publish(msg)
            if index % 6 == 5:
                setpoint = Vector3Stamped()
                setpoint.header.stamp = msg.header.stamp
                setpoint.vector.x, setpoint.vector.y = 0.001 * index, -0.002
                setpoints.publish(setpoint)
                sent.append((setpoint.vector.x, setpoint.vector.y, index))
            time.sleep(1 / 30)
        # Setpoints are reliable: acknowledged means recorded; frames are best effort (a grace).
        assert setpoints.wait_for_all_acked(Duration(seconds=20))
        time.sleep(0.3)
        assert client.call(Trigger, "recorder/stop", Trigger.Request()).success
    assert "as ['/camera/image_raw/compressed'" in log.read_text()

    bag = out / "episode_000000"
    with BagReader(bag) as reader:
        assert reader.topics["/camera/image_raw/compressed"] == "sensor_msgs/msg/CompressedImage"
        assert "/camera/image_raw" not in reader.topics
        stored = [deserialize(m.data, m.msgtype) for m in reader.messages(["/camera/image_raw/compressed"])]
    assert stored and {m.format for m in stored} == {"rgb8; png compressed bgr8"}
    for msg in stored:   # lossless: each stored frame is the frame sent
        np.testing.assert_array_equal(compressed_image_to_rgb(msg), scene_frame(int(msg.header.frame_id), 72, 128))
    recorded = sorted(int(m.header.frame_id) for m in stored)

    convert_bags([out], tmp_path / "data", ImageSpec(9, 16), "push_pixels_real")
    (episode,) = iter_episodes(tmp_path / "data")
    np.testing.assert_array_equal(episode.actions, np.array([s[:2] for s in sent], np.float32))
    # Each step: the newest recorded frame at or before its setpoint's frame, pixel-exact.
    paired = [max(i for i in recorded if i <= s[2]) for s in sent]
    np.testing.assert_array_equal(episode.observations["rgb"],
                                  np.stack([preprocess_image(scene_frame(i, 72, 128), ImageSpec(9, 16)) for i in paired]))


def test_recording_benchmark_runs_with_tiny_settings(tmp_path):
    from bench import recording
    out = tmp_path / "recording.json"
    assert recording.main(["--seconds", "0.4", "--noise", "2", "--variants", "raw", "png", "jpeg_q95",
                           "--encode-samples", "3", "--json", str(out)]) == 0
    results = json.loads(out.read_text())["results"]["noise_2"]
    assert set(results) == {"raw", "png", "jpeg_q95"}
    for name, result in results.items():
        assert result["frames"] == 12 and result["dataset_frames"] == 2 and result["mb_per_minute"] > 0
        lossless = name != "jpeg_q95"
        assert result["fidelity_full_resolution"]["identical"] == result["fidelity_dataset"]["identical"] == lossless
    assert results["jpeg_q95"]["fidelity_dataset"]["psnr_db"] >= JPEG_MIN_PSNR_DB
    assert results["jpeg_q95"]["mb_per_minute"] < results["png"]["mb_per_minute"] < results["raw"]["mb_per_minute"]
