"""Episode recorder: one rosbag2 MCAP bag per episode, written by a background thread.

The caller (the recorder node's subscription callbacks) only appends to a queue, so recording
never blocks the ROS executor or anything else in the control loop; when the disk cannot keep
up, messages are dropped and counted instead of piling up without bound. Start/stop/discard/
success are queued in order with the messages, so every bag holds exactly the messages that
arrived between its start and its stop.

Layout: <output_dir>/episode_000000/{metadata.yaml, episode_000000.mcap}; numbering resumes
after the highest existing episode, unfinished bags left by a crash are recovered on start-up.

Images (``image_format``): stored as they arrived (sensor_msgs/Image), or compressed by the writer
thread into the sensor_msgs/CompressedImage that image_transport's compressed transport would
send, on its topic ``<image topic>/compressed``: viewers and `ros2 bag play` see the standard
pair, the cameras and the policy keep publishing and reading raw frames, and the ROS executor
never waits for an encoder. A frame no codec takes (e.g. mono16) is stored raw on its own topic.
"""
from __future__ import annotations

import queue
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Union

import numpy as np

from cell.images import compress_image
from cell.recording.bag_io import (DurableBagWriter, deserialize, is_unfinished_bag, recover_bag,
                                      serialize, typestore)
from cell.recording.episodes import EVENTS_TOPIC, EVENTS_TYPE, encode_event

EPISODE_DIR = re.compile(r"^episode_(\d{6})$")
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
COMPRESSED_SUFFIX = "/compressed"   # image_transport: the compressed transport of topic T is T/compressed


@dataclass(frozen=True)
class RecordedTopic:
    name: str                   # relative names resolve in the recorder's namespace
    type: str                   # e.g. sensor_msgs/msg/Image
    best_effort: bool = False   # subscribe best-effort: hears reliable and best-effort publishers

    @classmethod
    def parse(cls, entry: str) -> "RecordedTopic":
        """'NAME TYPE' or 'NAME TYPE best_effort' (one string: ROS parameters hold no records)."""
        parts = entry.split()
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "best_effort"):
            raise ValueError(f"topic entry {entry!r} must be 'NAME TYPE' or 'NAME TYPE best_effort'")
        if parts[1] not in typestore().types:
            raise ValueError(f"unknown message type {parts[1]!r} for topic {parts[0]}")
        if parts[0].strip("/").endswith(EVENTS_TOPIC):
            raise ValueError(f"{EVENTS_TOPIC} is written by the recorder itself")
        return cls(parts[0], parts[1], len(parts) == 3)


@dataclass
class RecorderConfig:
    output_dir: str = "~/ibc_ros_demos"
    task: str = "push_pixels_real"
    topics: list[str] = field(default_factory=lambda: [   # RecordedTopic.parse entries
        "camera/image_raw sensor_msgs/msg/Image best_effort",
        "joint_states sensor_msgs/msg/JointState best_effort",
        "setpoint_delta geometry_msgs/msg/Vector3Stamped",
        "ee_target geometry_msgs/msg/PoseStamped best_effort",
        "joint_command sensor_msgs/msg/JointState best_effort",
    ])
    flush_interval_s: float = 0.5     # at most this much recording is lost on a crash
    max_queued_messages: int = 600    # ~ 20 s of 30 Hz images; beyond that messages are dropped
    compress: bool = False            # zstd chunk compression (costs CPU in the writer thread)
    fsync: bool = False               # also survive power loss, not just a killed process
    delete_discarded: bool = False    # keep discarded episodes' raw data by default
    image_format: Literal["raw", "jpeg", "png"] = "raw"   # jpeg/png: Image topics stored as T/compressed
    jpeg_quality: int = 95            # image_format jpeg: 1..100 (image_transport's default)

    def validate(self) -> None:
        if not self.output_dir:
            raise ValueError("output_dir must not be empty")
        if self.flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be positive, got {self.flush_interval_s}")
        if self.max_queued_messages < 1:
            raise ValueError(f"max_queued_messages must be >= 1, got {self.max_queued_messages}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be within 1..100, got {self.jpeg_quality}")
        names = [t.name for t in self.recorded_topics()]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"topics must be a non-empty list of distinct topics, got {names}")
        stored = list(stored_topics({t.name: t.type for t in self.recorded_topics()}, self.image_format).values())
        if len(set(stored)) != len(stored):
            raise ValueError(f"image_format {self.image_format} stores two topics under one name: topics "
                             f"{names} hold an image topic and its /compressed transport")

    def recorded_topics(self) -> list[RecordedTopic]:
        return [RecordedTopic.parse(entry) for entry in self.topics]


def stored_topics(topics: dict[str, str], image_format: str) -> dict[str, str]:
    """Recorded topic -> the bag topic holding it: an image topic's compressed transport when
    ``image_format`` compresses, the topic itself otherwise."""
    return {topic: topic + COMPRESSED_SUFFIX if image_format != "raw" and msgtype == IMAGE_TYPE else topic
            for topic, msgtype in topics.items()}


@dataclass(frozen=True)
class ImageCompression:
    """A serialized sensor_msgs/Image -> the serialized sensor_msgs/CompressedImage that
    image_transport's compressed publisher sends for it (same header)."""
    codec: str
    jpeg_quality: int

    def __call__(self, data: bytes) -> bytes:
        try:
            image = deserialize(data, IMAGE_TYPE)
        except Exception as exc:  # rosbags raises assorted errors on malformed CDR
            raise ValueError(f"undecodable {IMAGE_TYPE} ({type(exc).__name__}: {exc})") from exc
        image_format, payload = compress_image(image, self.codec, self.jpeg_quality)
        compressed = typestore().types[COMPRESSED_IMAGE_TYPE](
            header=image.header, format=image_format, data=np.frombuffer(payload, np.uint8))
        return serialize(compressed, COMPRESSED_IMAGE_TYPE)


class RecorderStateError(RuntimeError):
    """A request that does not fit the recorder's state (e.g. stop with no episode running)."""


@dataclass
class _Open:
    path: Path
    topics: dict[str, str]


@dataclass
class _Message:
    topic: str
    time_ns: int
    data: bytes


@dataclass
class _Close:
    custom_data: dict[str, str]
    delete: bool


_Item = Union[_Open, _Message, _Close, None]


@dataclass
class EpisodeState:
    index: int
    path: Path
    start_ns: int
    success: bool = False
    messages: dict[str, int] = field(default_factory=dict)   # topic -> messages offered to the bag


class EpisodeRecorder:
    """Thread-safe; ``offer`` is cheap and never blocks."""

    def __init__(self, config: RecorderConfig, topics: dict[str, str],
                 clock_ns: Callable[[], int] = time.time_ns,
                 on_event: Callable[[str], None] | None = None):
        """``topics``: bag topic name (resolved) -> message type, including the events topic."""
        self.config = config
        self.output_dir = Path(config.output_dir).expanduser()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.recovered = recover_unfinished(self.output_dir)
        self._events_topic = next((t for t in topics if t.endswith(EVENTS_TOPIC)), None)
        if self._events_topic is None:
            raise ValueError(f"topics must include the events topic {EVENTS_TOPIC}")
        self._compression = (ImageCompression(config.image_format, config.jpeg_quality)
                             if config.image_format != "raw" else None)
        self._stored_as = {topic: stored for topic, stored in stored_topics(topics, config.image_format).items()
                           if stored != topic}   # image topic -> its compressed transport
        self._topics = {self._stored_as.get(topic, topic): COMPRESSED_IMAGE_TYPE if topic in self._stored_as
                        else msgtype for topic, msgtype in topics.items()}
        self.stored_raw = 0      # frames no codec took, kept raw on their own topic
        self.stored_raw_reason = ""
        self._clock_ns = clock_ns
        self._on_event = on_event
        self._lock = threading.Lock()
        self._episode: EpisodeState | None = None
        self._next_index = next_episode_index(self.output_dir)
        self._queue: queue.Queue[_Item] = queue.Queue()
        self.dropped = 0
        self.written = 0
        self.kept = 0            # episodes stopped and kept since start-up
        self._writer: DurableBagWriter | None = None   # owned by the writer thread
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._write_loop, name="bag-writer", daemon=True)
        self._thread.start()

    @property
    def episode(self) -> EpisodeState | None:
        return self._episode

    @property
    def bag_topics(self) -> dict[str, str]:
        """Topic -> message type of the bags as opened (an image topic as its compressed transport;
        a frame no codec takes adds the raw topic when it comes)."""
        return dict(self._topics)

    # -- called from ROS callbacks -------------------------------------------------------
    def offer(self, topic: str, time_ns: int, data: bytes) -> bool:
        """Queue a serialized message for the running episode; False if dropped (queue full)."""
        episode = self._episode
        if episode is None:
            return False
        if self._queue.qsize() >= self.config.max_queued_messages:
            self.dropped += 1
            return False
        self._queue.put(_Message(topic, time_ns, data))
        episode.messages[topic] = episode.messages.get(topic, 0) + 1
        return True

    def start(self) -> EpisodeState:
        with self._lock:
            if self._episode is not None:
                raise RecorderStateError(f"episode {self._episode.index} is already recording")
            index = self._next_index
            self._next_index += 1
            path = self.output_dir / f"episode_{index:06d}"
            now = self._clock_ns()
            self._episode = EpisodeState(index, path, now)
            self._queue.put(_Open(path, self._topics))
            event = self._event("start", now, task=self.config.task)
            episode = self._episode
        self._notify(event)
        return episode

    def mark_success(self) -> EpisodeState:
        with self._lock:
            episode = self._require_episode("mark success")
            episode.success = True
            event = self._event("success", self._clock_ns())
        self._notify(event)
        return episode

    def stop(self) -> EpisodeState:
        return self._finish("stop")

    def discard(self) -> EpisodeState:
        return self._finish("discard")

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop a running episode (kept as a failure unless marked) and end the writer thread."""
        if self._episode is not None:
            self.stop()
        self._queue.put(None)
        self._thread.join(timeout_s)

    @property
    def unflushed(self) -> int:
        """Messages written but not yet on disk: what a crash would lose right now."""
        writer = self._writer
        return writer.unflushed if writer is not None else 0

    def pending(self) -> int:
        return self._queue.qsize()

    # -- internals --------------------------------------------------------------------------
    def _require_episode(self, action: str) -> EpisodeState:
        if self._episode is None:
            raise RecorderStateError(f"cannot {action}: no episode is recording")
        return self._episode

    def _finish(self, kind: str) -> EpisodeState:
        with self._lock:
            episode = self._require_episode(kind)
            now = self._clock_ns()
            event = self._event(kind, now)
            outcome = "discarded" if kind == "discard" else ("success" if episode.success else "failure")
            custom = {"ibc_ros.episode": str(episode.index), "ibc_ros.outcome": outcome,
                      "ibc_ros.task": self.config.task, "ibc_ros.start_time_ns": str(episode.start_ns),
                      "ibc_ros.stop_time_ns": str(now)}
            self._queue.put(_Close(custom, delete=kind == "discard" and self.config.delete_discarded))
            self._episode = None
            self.kept += kind != "discard"
        self._notify(event)
        return episode

    def _event(self, kind: str, now: int, **extra: str) -> str:
        """Queue the event into the bag; returns its text for _notify."""
        episode = self._episode
        assert episode is not None
        text = encode_event(kind, episode.index, now, **extra)
        msg = typestore().types["std_msgs/msg/String"](data=text)
        self._queue.put(_Message(self._events_topic, now, serialize(msg, EVENTS_TYPE)))
        return text

    def _notify(self, event: str) -> None:
        # Called after the state change is complete and queued: a listener that fails (e.g. a
        # publisher whose ROS context Ctrl-C has already shut down) cannot leave a bag unfinished.
        if self._on_event is not None:
            self._on_event(event)

    def _write_loop(self) -> None:
        writer: DurableBagWriter | None = None
        while True:
            try:
                item = self._queue.get(timeout=self.config.flush_interval_s)
            except queue.Empty:
                if writer is not None:
                    writer.flush_if_due()  # quiet topics still reach the disk on time
                continue
            try:
                writer = self._handle(writer, item)
            except Exception as exc:  # keep recording later episodes; the node reports errors
                self.errors.append(f"{type(exc).__name__}: {exc}")
                writer = None
            self._writer = writer
            if item is None:
                return

    def _handle(self, writer: DurableBagWriter | None, item: _Item) -> DurableBagWriter | None:
        if isinstance(item, _Open):
            return DurableBagWriter(item.path, item.topics, self.config.flush_interval_s,
                                    compress=self.config.compress, fsync=self.config.fsync)
        if isinstance(item, _Message) and writer is not None:
            writer.write(*self._stored(writer, item))
            self.written += 1
        elif isinstance(item, _Close) and writer is not None:
            for key, value in item.custom_data.items():
                writer.set_custom_data(key, value)
            writer.close()
            if item.delete:
                shutil.rmtree(writer.path)
            return None
        return writer

    def _stored(self, writer: DurableBagWriter, item: _Message) -> tuple[str, int, bytes]:
        """(topic, time, data) as the bag stores the message: an image compressed onto its
        /compressed topic; a frame no codec takes raw on its own topic (nothing recorded is lost)."""
        compressed_topic = self._stored_as.get(item.topic)
        if compressed_topic is None or self._compression is None:
            return item.topic, item.time_ns, item.data
        try:
            return compressed_topic, item.time_ns, self._compression(item.data)
        except ValueError as exc:
            self.stored_raw += 1
            self.stored_raw_reason = str(exc)
            writer.add_topic(item.topic, IMAGE_TYPE)
            return item.topic, item.time_ns, item.data


def next_episode_index(output_dir: Path) -> int:
    indices = [int(m.group(1)) for p in output_dir.iterdir() if (m := EPISODE_DIR.match(p.name))]
    return max(indices, default=-1) + 1


def recover_unfinished(output_dir: Path) -> dict[Path, int]:
    """Recover bags a killed recorder left behind; returns {bag: messages saved}."""
    return {p: recover_bag(p) for p in sorted(output_dir.iterdir())
            if EPISODE_DIR.match(p.name) and is_unfinished_bag(p)}
