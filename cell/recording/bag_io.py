"""rosbag2 (MCAP) writing and reading with the `rosbags` library, ROS-free.

Messages are stored exactly as they travelled over DDS (CDR bytes), so a bag written here is
read by `ros2 bag info/play` on a ROS install as well as by rosbags.

Crash durability: rosbags' MCAP writer keeps up to 1 MiB of messages in an in-memory chunk and
writes the index and metadata.yaml only on close. DurableBagWriter closes the pending chunk and
flushes the file every ``flush_interval_s``, so after a SIGKILL everything older than that
interval is on disk. Such an unfinished bag (no footer, no metadata.yaml) is turned back into a
complete bag by recover_bag().

What viewers (Foxglove) read: rosbags writes a complete MCAP summary on close - every schema
(ros2msg, the full message definition) and channel, a chunk index per chunk, message indexes,
statistics, the rosbag2 metadata record and summary offsets. DurableBagWriter keeps it exact:
chunks carry their CRC, and no chunk is without messages (Foxglove takes a recording's time range
from the chunk indexes, so a message-less chunk would stretch it to 1970 or to the year 2262).
"""
from __future__ import annotations

import os
import shutil
import struct
import tempfile
import time
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
from rosbags.interfaces import Connection
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from rosbags.rosbag2.storage_mcap import McapReader, McapWriter
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

ROSBAG2_VERSION = 9            # rosbag2 metadata version written by Jazzy/Kilted
MCAP_MAGIC = b"\x89MCAP0\r\n"
_MCAP_OP_FOOTER = 0x02
_MCAP_OP_DATA_END = 0x0F
_RECORD_HEADER = struct.Struct("<BQ")  # opcode, record length
# Chunk record: header, then message start/end time and uncompressed size (uint64 each), crc (uint32).
_CHUNK_CRC_OFFSET = _RECORD_HEADER.size + 3 * 8


class BagError(ValueError):
    """A bag is missing, unfinished, unreadable or lacks what the caller needs."""


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """Message definitions for the ROS distro in use (the common std/sensor/geometry types
    are identical in Humble..Kilted; the distro only changes the RIHS01 hashes written)."""
    distro = os.environ.get("ROS_DISTRO", "kilted").upper()
    store = getattr(Stores, f"ROS2_{distro}", Stores.ROS2_KILTED)
    return get_typestore(store)


def serialize(msg: Any, msgtype: str) -> bytes:
    return bytes(typestore().serialize_cdr(msg, msgtype))


def deserialize(data: bytes, msgtype: str) -> Any:
    return typestore().deserialize_cdr(data, msgtype)


def stamped_header(stamp_ns: int, frame_id: str) -> Any:
    """std_msgs/Header of a rosbags message stamped ``stamp_ns``."""
    types = typestore().types
    return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](
        sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id=frame_id)


def rgb_image_bytes(rgb: np.ndarray, stamp_ns: int, frame_id: str = "camera") -> bytes:
    """A serialized sensor_msgs/Image (rgb8) of an RGB uint8 frame [H, W, 3], as the camera sends it."""
    height, width, _ = rgb.shape
    msg = typestore().types["sensor_msgs/msg/Image"](
        header=stamped_header(stamp_ns, frame_id), height=height, width=width, encoding="rgb8",
        is_bigendian=0, step=width * 3, data=np.ascontiguousarray(rgb, dtype=np.uint8).reshape(-1))
    return serialize(msg, "sensor_msgs/msg/Image")


def is_finished(bag: Path) -> bool:
    return (Path(bag) / "metadata.yaml").is_file()


def is_unfinished_bag(path: Path) -> bool:
    """A directory holding an MCAP file but no metadata.yaml: a writer that never closed."""
    path = Path(path)
    return path.is_dir() and not is_finished(path) and any(path.glob("*.mcap"))


class DurableBagWriter:
    """One rosbag2 MCAP bag; chunks reach the disk at least every ``flush_interval_s``."""

    def __init__(self, path: str | Path, topics: Mapping[str, str], flush_interval_s: float = 0.5,
                 compress: bool = False, fsync: bool = False):
        if flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be positive, got {flush_interval_s}")
        unknown = [t for t in topics.values() if t not in typestore().types]
        if unknown:
            raise BagError(f"unknown message type(s) {unknown}")
        self.path = Path(path)
        self._writer = Writer(self.path, version=ROSBAG2_VERSION, storage_plugin=StoragePlugin.MCAP)
        if compress:
            # Per-chunk zstd: standard MCAP, read by ros2 bag and rosbags alike.
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._writer.open()
        self._storage = self._writer.storage
        if not isinstance(self._storage, McapWriter):
            raise BagError("DurableBagWriter needs rosbags' MCAP storage writer")
        self._close_chunk_without_crc = self._storage.close_chunk
        self._storage.close_chunk = self._close_chunk_with_crc   # also the writer's own 1 MiB closes
        self._connections = {topic: self._writer.add_connection(topic, msgtype, typestore=typestore())
                             for topic, msgtype in topics.items()}
        self._flush_interval_s = flush_interval_s
        self._fsync = fsync
        self.message_count = 0
        self.unflushed = 0          # messages a killed process would lose right now
        self.flush()  # schemas and channels on disk from the start

    @property
    def topics(self) -> dict[str, str]:
        return {topic: conn.msgtype for topic, conn in self._connections.items()}

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare one more topic while writing (no-op if it is declared with this type)."""
        known = self._connections.get(topic)
        if known is not None:
            if known.msgtype != msgtype:
                raise BagError(f"topic {topic!r} is already in the bag as {known.msgtype}, not {msgtype}")
            return
        if msgtype not in typestore().types:
            raise BagError(f"unknown message type {msgtype!r}")
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=typestore())

    def write(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        connection = self._connections.get(topic)
        if connection is None:
            raise BagError(f"topic {topic!r} is not one of this bag's topics {sorted(self._connections)}")
        self._writer.write(connection, int(timestamp_ns), data)
        self.message_count += 1
        self.unflushed += 1
        self.flush_if_due()

    def flush_if_due(self) -> None:
        if time.monotonic() - self._last_flush >= self._flush_interval_s:
            self.flush()

    def flush(self) -> None:
        if self._storage.chunk.msgs:
            self._storage.close_chunk()
        else:
            self._write_definitions_unchunked()
        self._storage.bio.flush()
        if self._fsync:
            os.fsync(self._storage.bio.fileno())
        self._last_flush = time.monotonic()
        self.unflushed = 0

    def _write_definitions_unchunked(self) -> None:
        """A pending chunk without messages holds only the schema and channel records rosbags
        queued there: they go into the data section itself, outside any chunk - on disk all the
        same, and no chunk without messages (its index would carry no valid time range)."""
        pending = self._storage.chunk.bio
        self._storage.bio.write(pending.getvalue())
        pending.seek(0)
        pending.truncate()

    def _close_chunk_with_crc(self) -> None:
        """rosbags writes every chunk with crc 0 ("not computed"), so damaged message bytes would
        read back silently. Fill in the CRC-32 of the uncompressed chunk, which rosbags, the mcap
        tools and `ros2 bag` verify on reading."""
        crc = zlib.crc32(self._storage.chunk.bio.getvalue())
        start = self._storage.bio.tell()
        self._close_chunk_without_crc()
        end = self._storage.bio.tell()
        self._storage.bio.seek(start + _CHUNK_CRC_OFFSET)
        self._storage.bio.write(struct.pack("<I", crc))
        self._storage.bio.seek(end)

    def set_custom_data(self, key: str, value: str) -> None:
        self._writer.set_custom_data(key, value)

    def close(self) -> None:
        self.flush()   # rosbags would close a pending message-less chunk as one
        if not self.message_count:   # MCAP statistics: start time zero when there are no messages
            self._storage.message_start_time = 0
        self._writer.close()


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    log_time_ns: int
    data: bytes


class BagReader:
    """Reads a finished rosbag2 bag (MCAP or sqlite3, any writer) in log-time order."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if is_unfinished_bag(self.path):
            raise BagError(f"{self.path} is an unfinished bag (its writer was killed); "
                           "recover it first (cell.recording.bag_io.recover_bag, done by the "
                           "recorder node at start-up)")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:  # rosbags raises several error types for unreadable bags
            raise BagError(f"{self.path}: not a readable rosbag2 bag ({exc})") from exc

    def __enter__(self) -> "BagReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self._reader.close()

    @property
    def topics(self) -> dict[str, str]:
        return {c.topic: c.msgtype for c in self._reader.connections}

    @property
    def custom_data(self) -> dict[str, str]:
        return dict(self._reader.storage.metadata.custom or {})

    @property
    def message_count(self) -> int:
        return self._reader.message_count

    @property
    def end_time_ns(self) -> int:
        return self._reader.end_time

    def messages(self, topics: Sequence[str] | None = None) -> Iterator[BagMessage]:
        connections = [c for c in self._reader.connections if topics is None or c.topic in topics]
        try:
            for conn, timestamp, data in self._reader.messages(connections=connections):
                yield BagMessage(conn.topic, conn.msgtype, timestamp, bytes(data))
        except Exception as exc:  # rosbags' ReaderError and friends: e.g. a chunk checksum mismatch
            raise BagError(f"{self.path}: damaged bag, unreadable after some messages ({exc})") from exc


def find_bags(paths: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """Expand each path (a bag, or a folder of bags) into (finished bags, unfinished bags)."""
    finished: list[Path] = []
    unfinished: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise BagError(f"{path} does not exist")
        if is_finished(path) or is_unfinished_bag(path):
            candidates = [path]
        else:
            candidates = sorted(p for p in path.iterdir() if p.is_dir())
            if not candidates:
                raise BagError(f"{path} is neither a rosbag2 bag nor a folder of bags")
        finished += [c for c in candidates if is_finished(c)]
        unfinished += [c for c in candidates if is_unfinished_bag(c)]
    return finished, unfinished


def recover_bag(path: str | Path) -> int:
    """Rewrite an unfinished MCAP bag as a complete one; returns the number of messages saved.

    Keeps every whole record the killed writer left on disk (DurableBagWriter flushes whole
    chunks), drops the torn tail, and rewrites the messages through rosbags' writer so the
    result has an index and metadata.yaml like any other bag. The original is replaced only
    after the rewrite succeeded.
    """
    bag = Path(path)
    if not is_unfinished_bag(bag):
        raise BagError(f"{bag} is not an unfinished MCAP bag")
    mcaps = sorted(bag.glob("*.mcap"))
    if len(mcaps) != 1:
        raise BagError(f"{bag}: expected one .mcap file, found {[m.name for m in mcaps]}")
    with tempfile.TemporaryDirectory(dir=bag.parent, prefix=f".{bag.name}.") as tmp:
        salvaged = Path(tmp) / "salvaged.mcap"
        _copy_complete_records(mcaps[0], salvaged)
        rebuilt = Path(tmp) / bag.name
        count = _rewrite_mcap(salvaged, rebuilt)
        shutil.rmtree(bag)
        shutil.move(str(rebuilt), str(bag))
    return count


def _copy_complete_records(source: Path, target: Path) -> None:
    """Copy the header and every complete top-level MCAP record, then close the file with a
    DataEnd record and a summary-less footer (readers then scan the records)."""
    data = source.read_bytes()
    if not data.startswith(MCAP_MAGIC):
        raise BagError(f"{source} is not an MCAP file")
    end = offset = len(MCAP_MAGIC)
    while offset + _RECORD_HEADER.size <= len(data):
        opcode, length = _RECORD_HEADER.unpack_from(data, offset)
        record_end = offset + _RECORD_HEADER.size + length
        if record_end > len(data) or opcode in (_MCAP_OP_FOOTER, _MCAP_OP_DATA_END):
            break
        end = offset = record_end
    with target.open("wb") as out:
        out.write(data[:end])
        out.write(_RECORD_HEADER.pack(_MCAP_OP_DATA_END, 4) + struct.pack("<I", 0))
        out.write(_RECORD_HEADER.pack(_MCAP_OP_FOOTER, 20) + struct.pack("<QQI", 0, 0, 0))
        out.write(MCAP_MAGIC)


def _rewrite_mcap(source: Path, bag: Path) -> int:
    reader = McapReader(source)
    try:
        reader.open()
    except Exception as exc:
        raise BagError(f"{source}: nothing recoverable ({exc})") from exc
    try:
        connections: list[Connection] = list(reader.connections)
        writer = DurableBagWriter(bag, {c.topic: c.msgtype for c in connections}, flush_interval_s=60.0)
        writer.set_custom_data("ibc_ros.recovered", "true")
        for conn, timestamp, data in reader.messages(connections):
            writer.write(conn.topic, timestamp, bytes(data))
        writer.close()
        return writer.message_count
    finally:
        reader.close()
