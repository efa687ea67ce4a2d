"""The project's dataset format <-> LeRobotDataset v3.0 (`ibc-data export|import --format lerobot`).

A LeRobot v3.0 dataset folder, as `export_lerobot` writes it (the layout of
huggingface/lerobot's `lerobot/datasets/utils.py`, CODEBASE_VERSION "v3.0"):

    meta/info.json                          codebase_version, fps, totals, path templates, features
    meta/stats.json                         min/max/mean/std/count per feature (images: per channel, in [0, 1])
    meta/tasks.parquet                      task string (the pandas index "task") -> task_index
    meta/episodes/chunk-000/file-000.parquet  one row per episode: length, tasks, where its rows and
                                            frames are (data/..., dataset_from/to_index,
                                            videos/<key>/..., from/to_timestamp), stats/<key>/<stat>
    data/chunk-000/file-000.parquet         one row per step of every episode, episodes in order
    videos/<key>/chunk-000/file-000.mp4     the frames of many episodes back to back, frame i of an
                                            episode at its from_timestamp + i / fps
    meta/ibc_ros.json                       ours (LeRobot ignores it): the source meta.json and each
                                            episode's seed and info, so an import gives the dataset back

A data or video file is closed and the next one (file-001, ...; chunk-001 after 1000 files) begun
once it passes LeRobot's size limits (100 MB / 500 MB); an episode is never split across files.
Frames are H.264 (libx264, yuv420p, CRF 18, a key frame every 2 frames as LeRobot encodes) at the
dataset's control rate. Per step: observation.state <- state, observation.images.camera <- rgb,
action <- actions (delta setpoint, metres), next.success <- success on the last step,
next.done <- the last step, timestamp = frame_index / fps.

`import_lerobot` reads any v3.x folder laid out like this (the keys chosen by the caller, see
`LeRobotKeys`) into a new dataset directory; frames are decoded with PyAV and not resized.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from ibc_core.data.episodes import DatasetError, DatasetWriter, Episode, episode_files, read_episode, read_meta

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000               # files per chunk folder (LeRobot's DEFAULT_CHUNK_SIZE)
DATA_FILE_MB = 100               # LeRobot's DEFAULT_DATA_FILE_SIZE_IN_MB
VIDEO_FILE_MB = 500              # LeRobot's DEFAULT_VIDEO_FILE_SIZE_IN_MB
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_PATH, STATS_PATH, TASKS_PATH = "meta/info.json", "meta/stats.json", "meta/tasks.parquet"
SIDECAR_PATH = "meta/ibc_ros.json"
STATE_KEY, IMAGE_KEY, ACTION_KEY = "observation.state", "observation.images.camera", "action"
VIDEO_CODEC, PIX_FMT = "libx264", "yuv420p"
GOP = 2                          # LeRobot's g: a key frame every 2 frames, so any frame decodes fast
DEFAULT_CRF = 18                 # x264's "visually lossless"; PSNR ~41 dB on push_pixels frames
AUTO, NONE = "auto", "none"      # LeRobotKeys words: pick the key / leave the observation out
_SCALAR = [1]
INDEX_FEATURES = {               # LeRobot's DEFAULT_FEATURES, in its order
    "timestamp": {"dtype": "float32", "shape": _SCALAR, "names": None},
    "frame_index": {"dtype": "int64", "shape": _SCALAR, "names": None},
    "episode_index": {"dtype": "int64", "shape": _SCALAR, "names": None},
    "index": {"dtype": "int64", "shape": _SCALAR, "names": None},
    "task_index": {"dtype": "int64", "shape": _SCALAR, "names": None},
}
EPISODE_COLUMNS = ("episode_index", "length", "data/chunk_index", "data/file_index",
                   "dataset_from_index", "dataset_to_index")


class LeRobotError(ValueError):
    """A LeRobot folder is missing, of another version, or lacks a feature or file it needs; or
    the output folder is not new."""


# ---------------------------------------------------------------- export


@dataclass
class ExportReport:
    out: Path
    episodes: int = 0
    frames: int = 0
    features: list[str] = field(default_factory=list)
    video_codec: str = ""
    bytes_written: int = 0

    def summary(self) -> str:
        return (f"wrote LeRobot v3.0 dataset {self.out}: {self.episodes} episodes, {self.frames} frames, "
                f"features {', '.join(self.features)}"
                + (f"; video {self.video_codec}" if self.video_codec else "")
                + f"; {self.bytes_written / 1e6:.2f} MB")


def export_lerobot(dataset: str | Path, out: str | Path, robot_type: str | None = "xarm6",
                   crf: int = DEFAULT_CRF, progress: bool = True) -> ExportReport:
    """Write the dataset at `dataset` as a new LeRobot v3.0 folder `out` (missing or empty). Nothing
    appears at `out` unless every episode was written."""
    dataset, out = Path(dataset), Path(out)
    meta = read_meta(dataset)
    files = episode_files(dataset)
    if not files:
        raise DatasetError(f"{dataset} holds no episodes")
    fps = whole_fps(meta.get("control_hz"), f"{dataset}/meta.json control_hz")
    check_new_output(out)
    first = read_episode(files[0])
    features = _features(first)
    task = str(meta.get("task") or "unknown")
    with _staged(out) as root, tqdm(files, desc="export to LeRobot", unit="ep", disable=not progress) as paths:
        writer = _LeRobotWriter(root, features, fps, crf)
        sidecar_episodes = []
        for number, path in enumerate(paths):
            episode = first if number == 0 else read_episode(path)
            writer.add(episode, task, str(path))
            sidecar_episodes.append({"seed": episode.seed, "info": episode.info})
        writer.finish(robot_type)
        _write_json(root / SIDECAR_PATH, {"meta": meta, "source": str(dataset), "episodes": sidecar_episodes,
                                          "episode_lengths": writer.lengths})
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return ExportReport(out, len(files), sum(writer.lengths), list(features),
                        VIDEO_CODEC if IMAGE_KEY in features else "", size)


def whole_fps(rate: Any, source: str) -> int:
    """LeRobot's fps is an int: the control rate in Hz, refused unless whole and positive."""
    if isinstance(rate, (int, float)) and rate > 0 and float(rate).is_integer():
        return int(rate)
    raise LeRobotError(f"{source} = {rate!r}: LeRobot needs a whole, positive frame rate (fps)")


def check_new_output(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LeRobotError(f"--out {out} exists and is not an empty folder: give a new one")


def _features(first: Episode) -> dict[str, dict[str, Any]]:
    """info.json features, in the order of the data columns (the video has none)."""
    features: dict[str, dict[str, Any]] = {}
    if "state" in first.observations:
        features[STATE_KEY] = {"dtype": "float32", "shape": [first.observations["state"].shape[1]], "names": None}
    if "rgb" in first.observations:
        height, width = first.observations["rgb"].shape[1:3]
        if height % 2 or width % 2:
            raise LeRobotError(f"rgb frames are {height}x{width}: {PIX_FMT} video needs an even height and width")
        features[IMAGE_KEY] = {"dtype": "video", "shape": [height, width, 3],
                               "names": ["height", "width", "channels"]}
    features[ACTION_KEY] = {"dtype": "float32", "shape": [first.actions.shape[1]], "names": None}
    features["next.done"] = {"dtype": "bool", "shape": _SCALAR, "names": None}
    features["next.success"] = {"dtype": "bool", "shape": _SCALAR, "names": None}
    return {**features, **INDEX_FEATURES}


class _LeRobotWriter:
    """Appends episodes to the data and video files; `finish` writes the meta/ files."""

    def __init__(self, root: Path, features: dict[str, dict[str, Any]], fps: int, crf: int):
        self.root, self.features, self.fps = root, features, fps
        self.data = _ParquetSeries(root, DATA_PATH)
        self.video = _VideoSeries(root, IMAGE_KEY, fps, crf) if IMAGE_KEY in features else None
        self.rows: list[dict[str, Any]] = []
        self.episode_stats: list[dict[str, dict[str, np.ndarray]]] = []
        self.tasks: dict[str, int] = {}
        self.lengths: list[int] = []

    def add(self, episode: Episode, task: str, source: str) -> None:
        self._check_shapes(episode, source)
        index = len(self.lengths)
        task_index = self.tasks.setdefault(task, len(self.tasks))
        first_row = sum(self.lengths)
        table = _episode_table(episode, index, first_row, task_index, self.fps, STATE_KEY in self.features)
        chunk, file = self.data.append(table)
        row: dict[str, Any] = {"episode_index": index, "tasks": [task], "length": len(episode),
                               "data/chunk_index": chunk, "data/file_index": file,
                               "dataset_from_index": first_row, "dataset_to_index": first_row + len(episode)}
        stats = {name: _stats(table.column(name)) for name in table.column_names}
        if self.video is not None:
            row.update(self.video.append(episode.observations["rgb"]))
            stats[IMAGE_KEY] = _image_stats(episode.observations["rgb"])
        self.rows.append(row)
        self.episode_stats.append(stats)
        self.lengths.append(len(episode))

    def _check_shapes(self, episode: Episode, source: str) -> None:
        expected = {ACTION_KEY: (episode.actions, "actions"), STATE_KEY: (episode.observations.get("state"), "state"),
                    IMAGE_KEY: (episode.observations.get("rgb"), "rgb")}
        for key, (array, name) in expected.items():
            if (key in self.features) != (array is not None):
                raise DatasetError(f"{source}: {name} {'missing' if array is None else 'present'}, "
                                   "unlike the first episode")
            if array is not None and list(array.shape[1:]) != self.features[key]["shape"]:
                raise DatasetError(f"{source}: {name} is {array.shape[1:]} per step, the first episode's "
                                   f"{tuple(self.features[key]['shape'])}")

    def finish(self, robot_type: str | None) -> None:
        self.data.close()
        features = self.features
        if self.video is not None:
            self.video.close()
            features[IMAGE_KEY]["info"] = video_info(self.root / VIDEO_PATH.format(
                video_key=IMAGE_KEY, chunk_index=0, file_index=0))
        episodes = len(self.lengths)
        for row, stats in zip(self.rows, self.episode_stats):
            row.update({f"stats/{key}/{name}": value.tolist() for key, values in stats.items()
                        for name, value in values.items()})
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        _write_parquet(self.root / EPISODES_PATH.format(chunk_index=0, file_index=0), pa.Table.from_pylist(self.rows))
        _write_parquet(self.root / TASKS_PATH, tasks_table(self.tasks))
        _write_json(self.root / STATS_PATH, {key: {name: value.tolist() for name, value in values.items()}
                                              for key, values in aggregate_stats(self.episode_stats).items()})
        _write_json(self.root / INFO_PATH, {
            "codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": episodes,
            "total_frames": sum(self.lengths), "total_tasks": len(self.tasks), "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILE_MB, "video_files_size_in_mb": VIDEO_FILE_MB, "fps": self.fps,
            "splits": {"train": f"0:{episodes}"}, "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.video is not None else None, "features": features})


def _episode_table(episode: Episode, episode_index: int, first_row: int, task_index: int, fps: int,
                   with_state: bool) -> pa.Table:
    steps = len(episode)
    frame = np.arange(steps, dtype=np.int64)
    last = frame == steps - 1
    columns: dict[str, pa.Array] = {}
    if with_state:
        columns[STATE_KEY] = _vectors(episode.observations["state"])
    columns[ACTION_KEY] = _vectors(episode.actions)
    columns["next.done"] = pa.array(last)
    columns["next.success"] = pa.array(last & bool(episode.success))
    columns["timestamp"] = pa.array((frame / fps).astype(np.float32))
    columns["frame_index"] = pa.array(frame)
    columns["episode_index"] = pa.array(np.full(steps, episode_index, dtype=np.int64))
    columns["index"] = pa.array(first_row + frame)
    columns["task_index"] = pa.array(np.full(steps, task_index, dtype=np.int64))
    return pa.table(columns)


def _vectors(array: np.ndarray) -> pa.FixedSizeListArray:
    """[T, N] -> fixed-size lists, the Arrow type of LeRobot's Sequence(length=N) float32 features."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), array.shape[1])


@dataclass
class _FileSlot:
    """chunk-XXX/file-YYY of a series of files: file_index runs to CHUNKS_SIZE, then the next chunk."""
    chunk_index: int = 0
    file_index: int = 0

    def advance(self) -> None:
        self.file_index += 1
        if self.file_index == CHUNKS_SIZE:
            self.chunk_index, self.file_index = self.chunk_index + 1, 0


class _ParquetSeries:
    """Data files: one row group per episode, a new file once one passes DATA_FILE_MB."""

    def __init__(self, root: Path, template: str):
        self.root, self.template, self.slot = root, template, _FileSlot()
        self.writer: pq.ParquetWriter | None = None
        self.path: Path | None = None

    def append(self, table: pa.Table) -> tuple[int, int]:
        if self.path is not None and self.path.stat().st_size >= DATA_FILE_MB * 2**20:
            self.close()
            self.slot.advance()
        if self.writer is None:
            self.path = self.root / self.template.format(chunk_index=self.slot.chunk_index,
                                                         file_index=self.slot.file_index)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.path, table.schema, compression="snappy")
        self.writer.write_table(table)
        return self.slot.chunk_index, self.slot.file_index

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class _VideoSeries:
    """One camera's MP4 files: the frames of consecutive episodes at 1 / fps spacing, a new file
    once one passes VIDEO_FILE_MB; returns each episode's videos/<key>/... columns."""

    def __init__(self, root: Path, key: str, fps: int, crf: int):
        self.root, self.key, self.fps, self.crf, self.slot = root, key, fps, crf, _FileSlot()
        self.container: Any = None
        self.stream: Any = None
        self.frames_in_file = 0

    def append(self, frames: np.ndarray) -> dict[str, Any]:
        if self.container is not None and Path(self.container.name).stat().st_size >= VIDEO_FILE_MB * 2**20:
            self.close()
            self.slot.advance()
        if self.container is None:
            self._open(frames.shape[1:3])
        start = self.frames_in_file
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = self.frames_in_file
            self.container.mux(self.stream.encode(frame))
            self.frames_in_file += 1
        prefix = f"videos/{self.key}/"
        return {prefix + "chunk_index": self.slot.chunk_index, prefix + "file_index": self.slot.file_index,
                prefix + "from_timestamp": start / self.fps, prefix + "to_timestamp": self.frames_in_file / self.fps}

    def _open(self, size: tuple[int, int]) -> None:
        path = self.root / VIDEO_PATH.format(video_key=self.key, chunk_index=self.slot.chunk_index,
                                             file_index=self.slot.file_index)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(path), "w")
        self.stream = self.container.add_stream(VIDEO_CODEC, rate=self.fps,
                                                options={"crf": str(self.crf), "g": str(GOP)})
        self.stream.height, self.stream.width = size
        self.stream.pix_fmt = PIX_FMT
        self.stream.time_base = Fraction(1, self.fps)
        self.frames_in_file = 0

    def close(self) -> None:
        if self.container is not None:
            self.container.mux(self.stream.encode())     # flush the encoder's delayed frames
            self.container.close()
            self.container = None


def video_info(path: Path) -> dict[str, Any]:
    """The `info` LeRobot stores with a video feature (its get_video_info), read back from the file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return {"video.height": stream.height, "video.width": stream.width,
                "video.codec": stream.codec_context.codec.canonical_name, "video.pix_fmt": stream.pix_fmt,
                "video.is_depth_map": False, "video.fps": int(stream.base_rate), "video.channels": 3,
                "has_audio": bool(container.streams.audio)}


def _stats(column: pa.ChunkedArray) -> dict[str, np.ndarray]:
    """LeRobot's per-episode stats of a data column: over the steps, per vector element."""
    values = _numpy(column).astype(np.float64).reshape(len(column), -1)
    return {"min": values.min(0), "max": values.max(0), "mean": values.mean(0), "std": values.std(0),
            "count": np.array([len(values)])}


def _image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per channel over every pixel of every frame, in [0, 1], shaped (3, 1, 1) as LeRobot's
    (which samples frames; this uses them all). From each channel's 256-level histogram: exact,
    and ~20x faster than reducing the pixels as floats."""
    counts = np.stack([np.bincount(frames[..., channel].ravel(), minlength=256) for channel in range(3)])
    levels = np.arange(256) / 255.0
    pixels = counts.sum(1)
    mean = counts @ levels / pixels
    std = np.sqrt(np.sum(counts * (levels[None] - mean[:, None]) ** 2, axis=1) / pixels)
    seen = counts > 0
    low, high = levels[seen.argmax(1)], levels[255 - seen[:, ::-1].argmax(1)]
    return {**{name: value.reshape(3, 1, 1) for name, value in (("min", low), ("max", high), ("mean", mean),
                                                                ("std", std))},
            "count": np.array([len(frames)])}


def aggregate_stats(per_episode: Sequence[Mapping[str, Mapping[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """Dataset stats from episode stats: count-weighted mean, pooled variance (LeRobot's aggregate_stats)."""
    merged: dict[str, dict[str, np.ndarray]] = {}
    for key in per_episode[0]:
        parts = [stats[key] for stats in per_episode]
        counts = np.array([float(p["count"][0]) for p in parts]).reshape(-1, *[1] * parts[0]["mean"].ndim)
        means = np.stack([p["mean"] for p in parts])
        mean = (means * counts).sum(0) / counts.sum()
        variance = ((np.stack([p["std"] for p in parts]) ** 2 + (means - mean) ** 2) * counts).sum(0) / counts.sum()
        merged[key] = {"min": np.min([p["min"] for p in parts], axis=0),
                       "max": np.max([p["max"] for p in parts], axis=0),
                       "mean": mean, "std": np.sqrt(variance), "count": np.array([int(counts.sum())])}
    return merged


def tasks_table(tasks: Mapping[str, int]) -> pa.Table:
    """meta/tasks.parquet as LeRobot writes it with pandas: column task_index, index "task" (the
    pandas metadata makes pandas, and so LeRobot, read the task strings back as the index)."""
    table = pa.table({"task_index": pa.array(list(tasks.values()), pa.int64()), "task": pa.array(list(tasks))})
    pandas_meta = {"index_columns": ["task"], "column_indexes": [],
                   "creator": {"library": "pyarrow", "version": pa.__version__},
                   "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                                "numpy_type": "int64", "metadata": None},
                               {"name": "task", "field_name": "task", "pandas_type": "unicode",
                                "numpy_type": "object", "metadata": None}]}
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


# ---------------------------------------------------------------- import


@dataclass(frozen=True)
class LeRobotKeys:
    """Which LeRobot features become our observations and actions. state / image: a feature key,
    AUTO (state: observation.state if there is one; image: the only camera, if there is one) or
    NONE (leave that observation out)."""
    action: str = ACTION_KEY
    state: str = AUTO
    image: str = AUTO


@dataclass
class ImportReport:
    out: Path
    episodes: int = 0
    frames: int = 0
    keys: dict[str, str] = field(default_factory=dict)      # our name -> LeRobot feature
    ignored: list[str] = field(default_factory=list)         # LeRobot features not imported
    task: str = ""
    restored_from_export: bool = False                       # meta/ibc_ros.json gave meta, seeds, info

    def summary(self) -> str:
        mapping = ", ".join(f"{ours} <- {theirs}" for ours, theirs in self.keys.items())
        lines = [f"wrote {self.episodes} episodes ({self.frames} steps) of task {self.task!r} to {self.out}",
                 f"features: {mapping}"]
        if self.ignored:
            lines.append(f"not imported: {', '.join(self.ignored)}")
        if self.restored_from_export:
            lines.append("meta.json, seeds and episode info restored from meta/ibc_ros.json (an ibc-data export)")
        return "\n".join(lines)


def import_lerobot(source: str | Path, out: str | Path, keys: LeRobotKeys = LeRobotKeys(),
                   task: str | None = None, progress: bool = True) -> ImportReport:
    """Read the LeRobot v3.x folder `source` into a new dataset directory `out` (missing or empty).
    Every check on the folder runs before anything is written, and `out` appears only once every
    episode converted."""
    plan = _plan_import(Path(source), Path(out), keys, task)
    steps = 0
    try:
        with _staged(Path(out)) as root, tqdm(plan.episodes, desc="import from LeRobot", unit="ep",
                                              disable=not progress) as rows:
            converted = (_episode(row, plan.data, plan.video, plan.sidecar) for row in rows)
            first = next(converted)
            writer = DatasetWriter(root, _imported_meta(plan, first))
            for episode in itertools.chain([first], converted):
                writer.add(episode)
                steps += len(episode)
    finally:
        if plan.video is not None:
            plan.video.close()
    used = set(plan.chosen.values())
    ignored = [key for key in plan.info["features"] if key not in used and key not in INDEX_FEATURES]
    return ImportReport(Path(out), len(plan.episodes), steps, plan.chosen, ignored, plan.task,
                        plan.sidecar is not None)


@dataclass
class _ImportPlan:
    """What an import reads, every part checked before anything is written."""
    source: Path
    info: dict[str, Any]
    fps: int
    chosen: dict[str, str]                    # our name -> LeRobot feature
    episodes: list[dict[str, Any]]            # meta/episodes rows, by episode_index
    sidecar: dict[str, Any] | None            # meta/ibc_ros.json of our export, if it still fits
    task: str
    data: _DataFiles
    video: _VideoFiles | None
    action_range: tuple[np.ndarray, np.ndarray] | None    # None: the sidecar's meta has the limits


def _plan_import(source: Path, out: Path, keys: LeRobotKeys, task: str | None) -> _ImportPlan:
    info = read_info(source)
    fps = whole_fps(info.get("fps"), f"{source}/{INFO_PATH} fps")
    chosen = _resolve_keys(info["features"], keys, source)
    episodes = _read_episode_rows(source, chosen)
    check_new_output(out)
    sidecar = _sidecar(source, episodes, fps)
    data = _DataFiles(source, info, chosen)
    video = _VideoFiles(source, info, chosen["rgb"], fps) if "rgb" in chosen else None
    for row in episodes:
        data.path(row)
        if video is not None:
            video.path(row)
    return _ImportPlan(source, info, fps, chosen, episodes, sidecar, task or _dataset_task(episodes, sidecar, source),
                       data, video, None if sidecar is not None else data.action_range(episodes))


def read_info(source: Path) -> dict[str, Any]:
    """meta/info.json of a LeRobot v3.x folder; LeRobotError naming what is wrong otherwise."""
    if not source.is_dir():
        raise LeRobotError(f"{source}: no such folder")
    path = source / INFO_PATH
    info = _read_json(path, f"{source} is not a LeRobot dataset: {INFO_PATH} is missing")
    version = str(info.get("codebase_version"))
    if not version.startswith("v3."):
        raise LeRobotError(f"{path}: codebase_version {version!r} is not v3.x; convert a v2.x dataset with "
                           "LeRobot's convert_dataset_v21_to_v30 first")
    missing = [name for name in ("fps", "features", "data_path") if name not in info]
    if missing:
        raise LeRobotError(f"{path} lacks {missing}")
    return info


def _resolve_keys(features: Mapping[str, Any], keys: LeRobotKeys, source: Path) -> dict[str, str]:
    """Our name ("actions", "state", "rgb", "success") -> the LeRobot feature it is read from."""
    vectors = [k for k, f in features.items() if k not in INDEX_FEATURES and f.get("dtype") in ("float32", "float64")
               and len(f.get("shape", ())) == 1]
    cameras = [k for k, f in features.items() if f.get("dtype") in ("video", "image")]
    chosen = {"actions": _vector_key(keys.action, vectors, "action", source)}
    state = STATE_KEY if keys.state == AUTO and STATE_KEY in vectors else keys.state
    if state not in (AUTO, NONE):
        chosen["state"] = _vector_key(state, vectors, "state", source)
    image = cameras[0] if keys.image == AUTO and len(cameras) == 1 else keys.image
    if image == AUTO and len(cameras) > 1:
        raise LeRobotError(f"{source} has several cameras {cameras}: choose one with --image-key (or none)")
    if image not in (AUTO, NONE):
        if image not in cameras:
            raise LeRobotError(f"{source} has no camera feature {image!r}; its cameras: {cameras or 'none'}")
        if features[image]["dtype"] != "video":
            raise LeRobotError(f"{source}: {image} is stored as {features[image]['dtype']!r} (PNG in the "
                               "data files); only 'video' camera features are read")
        chosen["rgb"] = image
    if len(chosen) == 1:
        raise LeRobotError(f"{source}: no observation chosen (state and image both none/absent); "
                           f"its vector features: {vectors}, cameras: {cameras or 'none'}")
    if features.get("next.success", {}).get("dtype") == "bool":
        chosen["success"] = "next.success"
    return chosen


def _vector_key(key: str, vectors: Sequence[str], role: str, source: Path) -> str:
    if key not in vectors:
        raise LeRobotError(f"{source} has no float vector feature {key!r} for the {role}; "
                           f"its vector features: {list(vectors) or 'none'} (choose one with --{role}-key)")
    return key


def _read_episode_rows(source: Path, chosen: Mapping[str, str]) -> list[dict[str, Any]]:
    """Rows of meta/episodes/*/*.parquet (without the stats columns), by episode_index."""
    paths = sorted((source / "meta" / "episodes").glob("*/*.parquet"))
    if not paths:
        raise LeRobotError(f"{source} has no episode table meta/episodes/chunk-*/file-*.parquet")
    needed = list(EPISODE_COLUMNS)
    if "rgb" in chosen:
        needed += [f"videos/{chosen['rgb']}/{name}" for name in ("chunk_index", "file_index", "from_timestamp",
                                                                 "to_timestamp")]
    rows = []
    for path in paths:
        names = pq.read_schema(path).names
        missing = [name for name in needed if name not in names]
        if missing:
            raise LeRobotError(f"{path} lacks the episode columns {missing}")
        wanted = needed + [name for name in ("tasks",) if name in names]
        rows += pq.read_table(path, columns=wanted).to_pylist()
    if not rows:
        raise LeRobotError(f"{source} holds no episodes (its meta/episodes tables are empty)")
    return sorted(rows, key=lambda row: row["episode_index"])


def _sidecar(source: Path, episodes: Sequence[Mapping[str, Any]], fps: int) -> dict[str, Any] | None:
    """meta/ibc_ros.json of an ibc-data export, if it still describes these episodes."""
    path = source / SIDECAR_PATH
    if not path.is_file():
        return None
    sidecar = _read_json(path, f"{path} is missing")
    if sidecar.get("episode_lengths") != [row["length"] for row in episodes] \
            or sidecar.get("meta", {}).get("control_hz") != fps:
        return None    # the folder was edited since the export: read it as any LeRobot dataset
    return sidecar


def _dataset_task(episodes: Sequence[Mapping[str, Any]], sidecar: dict[str, Any] | None, source: Path) -> str:
    if sidecar is not None:
        return str(sidecar["meta"]["task"])
    tasks = sorted({task for row in episodes for task in row.get("tasks") or []})
    if len(tasks) == 1:
        return tasks[0]
    raise LeRobotError(f"{source} holds {'no task' if not tasks else f'several tasks {tasks}'}: "
                       "name the dataset's task with --task NAME")


class _DataFiles:
    """The data parquet files, read one at a time (episodes come in file order), as numpy columns."""

    def __init__(self, source: Path, info: Mapping[str, Any], chosen: Mapping[str, str]):
        self.source, self.template, self.chosen = source, info["data_path"], chosen
        self.loaded: tuple[Path, dict[str, np.ndarray]] | None = None

    def path(self, row: Mapping[str, Any]) -> Path:
        path = self.source / self.template.format(chunk_index=row["data/chunk_index"],
                                                  file_index=row["data/file_index"])
        if not path.is_file():
            raise LeRobotError(f"episode {row['episode_index']}: data file {path} is missing")
        return path

    def steps(self, row: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Our name -> this episode's values, in frame order."""
        path = self.path(row)
        if self.loaded is None or self.loaded[0] != path:
            self.loaded = (path, self._read(path))
        columns = self.loaded[1]
        rows = np.flatnonzero(columns["episode_index"] == row["episode_index"])
        rows = rows[np.argsort(columns["frame_index"][rows], kind="stable")]
        if len(rows) != row["length"]:
            raise LeRobotError(f"episode {row['episode_index']}: {path} holds {len(rows)} rows of it, "
                               f"the episode table says {row['length']}")
        return {name: values[rows] for name, values in columns.items()}

    def action_range(self, episodes: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension min and max of every episode's actions (the imported dataset's action limits)."""
        parts = [self._read(path)["actions"] for path in dict.fromkeys(self.path(row) for row in episodes)]
        return np.min([p.min(0) for p in parts], axis=0), np.max([p.max(0) for p in parts], axis=0)

    def _read(self, path: Path) -> dict[str, np.ndarray]:
        wanted = {"episode_index": "episode_index", "frame_index": "frame_index",
                  **{ours: key for ours, key in self.chosen.items() if ours != "rgb"}}
        names = pq.read_schema(path).names
        missing = [key for key in wanted.values() if key not in names]
        if missing:
            raise LeRobotError(f"{path} lacks the columns {missing}; it has {names}")
        table = pq.read_table(path, columns=list(dict.fromkeys(wanted.values())))
        return {ours: _numpy(table.column(key)) for ours, key in wanted.items()}


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    """An Arrow column as numpy: scalars [N], lists (fixed or not, all one length) [N, D]."""
    array = column.combine_chunks()
    if not pa.types.is_list(array.type) and not pa.types.is_fixed_size_list(array.type):
        return array.to_numpy(zero_copy_only=False)
    values = array.flatten().to_numpy(zero_copy_only=False)
    if len(array) and len(values) % len(array):
        raise LeRobotError(f"column {column!r} holds lists of different lengths")
    return values.reshape(len(array), -1)


class _VideoFiles:
    """A camera's MP4 files, decoded forward with PyAV; one open at a time."""

    def __init__(self, source: Path, info: Mapping[str, Any], key: str, fps: int):
        if not info.get("video_path"):
            raise LeRobotError(f"{source}/{INFO_PATH} has no video_path for the camera {key}")
        self.source, self.template, self.key, self.fps = source, info["video_path"], key, fps
        self.reader: _VideoReader | None = None

    def path(self, row: Mapping[str, Any]) -> Path:
        prefix = f"videos/{self.key}/"
        path = self.source / self.template.format(video_key=self.key, chunk_index=row[prefix + "chunk_index"],
                                                  file_index=row[prefix + "file_index"])
        if not path.is_file():
            raise LeRobotError(f"episode {row['episode_index']}: video {path} is missing")
        return path

    def frames(self, row: Mapping[str, Any]) -> np.ndarray:
        """The episode's frames: those stamped in [from_timestamp, to_timestamp), each within half a
        frame period of its slot; LeRobotError unless there is one per step."""
        path = self.path(row)
        if self.reader is None or self.reader.path != path:
            self.close()
            self.reader = _VideoReader(path)
        prefix, half = f"videos/{self.key}/", 0.5 / self.fps
        start, stop = row[prefix + "from_timestamp"], row[prefix + "to_timestamp"]
        frames = self.reader.between(start - half, stop - half)
        if len(frames) != row["length"]:
            raise LeRobotError(f"episode {row['episode_index']}: {path} holds {len(frames)} frames in "
                               f"[{start:.3f}, {stop:.3f}) s, the episode has {row['length']} steps")
        return np.stack(frames)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None


class _VideoReader:
    """One MP4 decoded forward: the RGB frames of consecutive time windows (reopened to go back)."""

    def __init__(self, path: Path):
        self.path = path
        self._open()

    def _open(self) -> None:
        self.container = av.open(str(self.path))
        self.decoded = self.container.decode(video=0)
        self.pending: Any = None            # the first frame past the last window, not handed out
        self.passed = -np.inf               # stamp of the last frame handed out or skipped

    def between(self, start: float, stop: float) -> list[np.ndarray]:
        """RGB frames stamped in [start, stop), in order."""
        if start <= self.passed:
            self.close()
            self._open()
        frames = []
        while True:
            frame = self.pending if self.pending is not None else next(self.decoded, None)
            self.pending = None
            if frame is None:
                return frames
            if frame.time >= stop:
                self.pending = frame
                return frames
            self.passed = frame.time
            if frame.time >= start:
                frames.append(frame.to_ndarray(format="rgb24"))

    def close(self) -> None:
        self.container.close()


def _episode(row: Mapping[str, Any], data: _DataFiles, video: _VideoFiles | None,
             sidecar: dict[str, Any] | None) -> Episode:
    steps = data.steps(row)
    observations = {"state": steps["state"].astype(np.float32)} if "state" in steps else {}
    if video is not None:
        observations["rgb"] = video.frames(row)
    index = int(row["episode_index"])
    restored = sidecar["episodes"][index] if sidecar is not None else {"seed": -1, "info": {}}
    info = restored["info"] if sidecar is not None else {"lerobot_episode_index": index,
                                                          "tasks": list(row.get("tasks") or [])}
    # LeRobot datasets are demonstrations: without next.success every episode counts as a success.
    success = bool(steps["success"].any()) if "success" in steps else True
    return Episode(actions=steps["actions"].astype(np.float32), observations=observations, success=success,
                   seed=int(restored["seed"]), info=info)


def _imported_meta(plan: _ImportPlan, first: Episode) -> dict[str, Any]:
    """meta.json: the exported one where meta/ibc_ros.json has it, else derived from the data
    (action limits = the actions' range per dimension, image_spec = the frames' size, no crop)."""
    keys = sorted(first.observations)
    if plan.sidecar is not None:
        meta = {key: value for key, value in plan.sidecar["meta"].items() if key != "format_version"}
    else:
        low, high = plan.action_range
        meta = {"source": "lerobot", "action_low": low.tolist(), "action_high": high.tolist()}
    meta.update(task=plan.task, control_hz=float(plan.fps), observation_keys=keys,
                lerobot={"path": str(plan.source), "codebase_version": plan.info["codebase_version"],
                         "robot_type": plan.info.get("robot_type")})
    meta.pop("state_dim", None)
    if "state" in keys:
        meta["state_dim"] = int(first.observations["state"].shape[1])
    spec = meta.pop("image_spec", None) or {"crop": [0.0, 0.0, 1.0, 1.0]}
    if "rgb" in keys:
        height, width = first.observations["rgb"].shape[1:3]
        meta["image_spec"] = {**spec, "height": int(height), "width": int(width)}
    return meta


# ---------------------------------------------------------------- files


@contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """A new folder beside `out` that becomes `out` (missing or empty) only when the block ends
    without an error; on an error it is removed and `out` is as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield stage
        umask = os.umask(0)
        os.umask(umask)
        stage.chmod(0o777 & ~umask)      # mkdtemp's folder is private; the dataset is not
        os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _read_json(path: Path, missing: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise LeRobotError(missing) from None
    except json.JSONDecodeError as exc:
        raise LeRobotError(f"{path} is not valid JSON: {exc}") from exc


def _write_parquet(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy")


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=4))

