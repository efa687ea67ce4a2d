"""rosbag2 recordings -> the project's training dataset (`ibc-data from-bags BAG... --out DIR`).

Each kept episode (start .. stop on `recorder/events`; discarded ones are dropped) becomes one
dataset episode: action t is the t-th `setpoint_delta` (dx, dy) logged in the episode, as the
controller executed it (its own SafetyEnvelope.clamp_delta: clipped to max_setpoint_step; a
setpoint the controller rejects, e.g. NaN, is refused as a step), observation t is the newest
camera image whose capture stamp is at or before that setpoint's header stamp (the stamp of the
image the operator or policy acted on), preprocessed with ibc_core.data.preprocess exactly as the
policy node does. An unfinished episode (its recorder was killed: no stop event; the restarted
recorder recovered the bag up to its last flush) is converted as a failure unless
`--skip-unfinished`.

Nothing recorded is lost to one bad message: a message that cannot be decoded, or a camera frame
the policy node would refuse (cell.images.check_image), is skipped and listed with its bag,
topic and log time in the summary; the rest converts.

Works on any rosbag2 bag with these topics (MCAP or sqlite3, one bag per episode as the
recorder writes them or one long `ros2 bag record` session holding many episodes). The camera
may be recorded raw (`camera/image_raw`, sensor_msgs/Image) or compressed (its image_transport
topic `camera/image_raw/compressed`, sensor_msgs/CompressedImage JPEG/PNG), or both: each frame
is decoded by its message type, and the dataset is the same either way (PNG: bit-identical).
"""
from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from ibc_core.data.episodes import DatasetError, DatasetWriter, Episode, read_meta, validate_episode
from ibc_core.data.preprocess import ImageSpec, preprocess_image
from cell.control.config import ControllerConfig, load_controller_config
from cell.control.envelope import SafetyEnvelope
from cell.images import compressed_image_to_rgb, image_to_rgb
from cell.recording.bag_io import BagError, BagReader, deserialize, find_bags
from cell.recording.episodes import EVENTS_TOPIC, EpisodeSpan, decode_event, split_episodes
from cell.recording.recorder import COMPRESSED_IMAGE_TYPE, COMPRESSED_SUFFIX, IMAGE_TYPE
from cell.timing import load_timing

IMAGE_TOPIC = "camera/image_raw"
IMAGE_DECODERS: dict[str, Callable[[Any], np.ndarray]] = {   # camera message type -> RGB frame
    IMAGE_TYPE: image_to_rgb, COMPRESSED_IMAGE_TYPE: compressed_image_to_rgb}
SETPOINT_TOPIC = "setpoint_delta"
MAX_LISTED = 20                  # bad messages listed one per line in the summary


@dataclass(frozen=True)
class DroppedMessage:
    """A recorded message the converter skipped, and why."""
    bag: str
    topic: str
    log_time_ns: int
    reason: str

    def __str__(self) -> str:
        return f"{self.bag} {self.topic} at {self.log_time_ns} ns: {self.reason}"


@dataclass
class ConversionReport:
    bags: int = 0
    unfinished_bags: list[str] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)   # per episode found in the bags
    episodes_written: int = 0
    steps_written: int = 0
    steps_without_image: int = 0        # setpoints stamped before the first image: dropped
    empty_episodes: int = 0             # kept episodes with no usable step
    max_image_age_s: float = 0.0        # setpoint stamp minus paired image stamp, worst case
    dropped: list[DroppedMessage] = field(default_factory=list)   # bad messages, skipped
    steps_refused: int = 0              # setpoints the controller's envelope rejects (in dropped too)
    actions_clipped: int = 0            # setpoints stored as the envelope clamped them
    unfinished_converted: int = 0       # unfinished episodes written as failures
    include_unfinished: bool = True

    def summary(self) -> str:
        unfinished = self.outcomes["unfinished"]
        lines = [f"bags read: {self.bags}",
                 "episodes found: " + (", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())) or "none"),
                 f"episodes written: {self.episodes_written} ({self.steps_written} steps; "
                 f"{self.unfinished_converted} unfinished written as failures)",
                 f"dropped: {self.outcomes['discarded']} discarded, "
                 f"{0 if self.include_unfinished else unfinished} unfinished, "
                 f"{self.empty_episodes} empty episodes, {self.steps_without_image} steps without an image, "
                 f"{len(self.dropped)} bad message(s) ({self.steps_refused} setpoint refused as the controller "
                 f"rejects it)",
                 f"{self.actions_clipped} actions clipped to the controller's envelope (stored as executed)",
                 f"oldest image paired with a setpoint: {self.max_image_age_s * 1000:.0f} ms"]
        lines += [f"  skipped {message}" for message in self.dropped[:MAX_LISTED]]
        if len(self.dropped) > MAX_LISTED:
            lines.append(f"  ... and {len(self.dropped) - MAX_LISTED} more bad messages "
                         f"(ConversionReport.dropped lists them all)")
        if self.unfinished_bags:
            lines.append(f"skipped unfinished bags (recover them by starting the recorder on their "
                         f"folder): {', '.join(self.unfinished_bags)}")
        return "\n".join(lines)


@dataclass
class _BagContents:
    image_stamps: np.ndarray            # int64 ns, capture stamps, sorted
    images: list[np.ndarray]            # preprocessed, same order
    setpoints: list[tuple[int, int, float, float, bool]]   # (log time, header stamp, dx, dy executed, clipped)
    spans: list[EpisodeSpan]


def convert_bags(bags: Sequence[str | Path], out: str | Path, spec: ImageSpec, task: str | None = None,
                 controller: ControllerConfig | None = None,
                 include_unfinished: bool = True) -> ConversionReport:
    """Append every kept episode of ``bags`` to the dataset at ``out``. Actions go through the
    envelope of ``controller`` (default: the installed config/controller.yaml), which also gives
    the dataset's action limits. ``task``: the dataset's task name; None = the one the recorder
    stored with the episodes (their start events)."""
    envelope = SafetyEnvelope(controller or load_controller_config())
    _check_existing_rate(Path(out))
    finished, unfinished = find_bags(bags)
    if not finished:
        raise BagError(f"no finished rosbag2 bags in {[str(b) for b in bags]}")
    report = ConversionReport(bags=len(finished), unfinished_bags=[str(p) for p in unfinished],
                              include_unfinished=include_unfinished)
    episodes: list[Episode] = []
    for bag in tqdm(finished, desc="reading bags", unit="bag"):
        content = _read_bag(bag, spec, envelope, report)
        for span in content.spans:
            report.outcomes[span.outcome] += 1
            wanted = span.kept or (include_unfinished and span.outcome == "unfinished")
            episode = _episode(bag, span, content, report) if wanted else None
            if episode is not None:
                episodes.append(episode)
                report.unfinished_converted += span.outcome == "unfinished"
            elif wanted:
                report.empty_episodes += 1
    if not episodes:
        raise BagError(f"no usable episodes in the bags:\n{report.summary()}")
    for episode in episodes:  # every episode checked before anything is written
        validate_episode(episode, f"{episode.info['bag']} (episode {episode.info['episode']})")
    task = task or _recorded_task(episodes)
    writer = DatasetWriter(out, _meta(task, spec, envelope.max_setpoint_step))  # only now: bad input changes nothing
    for episode in episodes:
        writer.add(episode)
    report.episodes_written = len(episodes)
    report.steps_written = sum(len(e) for e in episodes)
    return report


def pair_with_images(action_stamps: np.ndarray, image_stamps: np.ndarray) -> np.ndarray:
    """Index of the newest image stamped at or before each action stamp; -1 where none is."""
    return np.searchsorted(image_stamps, action_stamps, side="right") - 1


def stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def resolve_topic(available: Sequence[str], name: str, bag: Path) -> str:
    """The bag topic for a relative name: '/name' or '<namespace>/name', exactly one."""
    matches = _named(available, name)
    if len(matches) != 1:
        raise BagError(f"{bag}: expected one topic named {name!r}, found {matches or 'none'} "
                       f"among {sorted(available)}")
    return matches[0]


def resolve_image_topics(topics: Mapping[str, str], bag: Path) -> list[str]:
    """The camera's bag topics: raw, its compressed transport, or both (a recorder compressing the
    frames keeps one no codec takes raw); BagError unless at least one, of an image type, is there."""
    found = [t for name in (IMAGE_TOPIC, IMAGE_TOPIC + COMPRESSED_SUFFIX) for t in _named(list(topics), name)]
    if not found:
        raise BagError(f"{bag}: no camera topic {IMAGE_TOPIC!r} or {IMAGE_TOPIC + COMPRESSED_SUFFIX!r} "
                       f"among {sorted(topics)}")
    for topic in found:
        if topics[topic] not in IMAGE_DECODERS:
            raise BagError(f"{bag}: camera topic {topic} holds {topics[topic]}, not one of {sorted(IMAGE_DECODERS)}")
    return found


def _named(available: Sequence[str], name: str) -> list[str]:
    return [t for t in available if t == name or t == "/" + name or t.endswith("/" + name)]


def _read_bag(bag: Path, spec: ImageSpec, envelope: SafetyEnvelope, report: ConversionReport) -> _BagContents:
    """Images, executed setpoints and episode spans of one bag; bad messages are skipped and
    listed in ``report.dropped`` (a damaged chunk, which loses the rest of the bag, raises)."""
    with BagReader(bag) as reader:
        image_topics = resolve_image_topics(reader.topics, bag)
        setpoint_topic, events_topic = (resolve_topic(list(reader.topics), name, bag)
                                        for name in (SETPOINT_TOPIC, EVENTS_TOPIC))
        stamps: list[int] = []
        images: list[np.ndarray] = []
        setpoints: list[tuple[int, int, float, float, bool]] = []
        events: list[tuple[int, dict[str, Any]]] = []
        for message in reader.messages([*image_topics, setpoint_topic, events_topic]):
            try:
                try:
                    msg = deserialize(message.data, message.msgtype)
                except Exception as exc:  # rosbags raises assorted errors on malformed CDR
                    raise ValueError(f"undecodable {message.msgtype} ({type(exc).__name__}: {exc})") from exc
                if message.topic in image_topics:
                    images.append(preprocess_image(IMAGE_DECODERS[message.msgtype](msg), spec))
                    stamps.append(stamp_ns(msg.header))
                elif message.topic == setpoint_topic:
                    setpoints.append((message.log_time_ns, stamp_ns(msg.header),
                                      *_executed(envelope, msg.vector.x, msg.vector.y)))
                else:
                    events.append((message.log_time_ns, decode_event(msg.data)))
            except ValueError as exc:  # EventError, check_image's and clamp_delta's errors
                report.dropped.append(DroppedMessage(str(bag), message.topic, message.log_time_ns, str(exc)))
                report.steps_refused += message.topic == setpoint_topic
        end_ns = reader.end_time_ns
    order = np.argsort(np.asarray(stamps, dtype=np.int64), kind="stable")
    return _BagContents(np.asarray(stamps, dtype=np.int64)[order], [images[i] for i in order],
                        setpoints, split_episodes(events, end_ns))


def _executed(envelope: SafetyEnvelope, dx: float, dy: float) -> tuple[float, float, bool]:
    """The delta the controller executed for a recorded setpoint, and whether it was clipped;
    ValueError (the step is refused) where the controller rejects it."""
    executed = envelope.clamp_delta(np.array([dx, dy]))
    clipped = bool(executed[0] != dx or executed[1] != dy)
    return float(executed[0]), float(executed[1]), clipped


def _episode(bag: Path, span: EpisodeSpan, content: _BagContents, report: ConversionReport) -> Episode | None:
    steps = [s for s in content.setpoints if span.start_ns <= s[0] <= span.stop_ns]
    if not steps:
        return None
    action_stamps = np.array([s[1] for s in steps], dtype=np.int64)
    paired = pair_with_images(action_stamps, content.image_stamps)
    usable = paired >= 0
    report.steps_without_image += int(np.count_nonzero(~usable))
    if not usable.any():
        return None
    ages = (action_stamps[usable] - content.image_stamps[paired[usable]]) / 1e9
    report.max_image_age_s = max(report.max_image_age_s, float(ages.max()))
    actions = np.array([s[2:4] for s, ok in zip(steps, usable) if ok], dtype=np.float32)
    clipped = sum(s[4] for s, ok in zip(steps, usable) if ok)
    report.actions_clipped += clipped
    rgb = np.stack([content.images[i] for i in paired[usable]])
    return Episode(actions=actions, observations={"rgb": rgb}, success=span.outcome == "success",
                   info={"bag": str(bag), "episode": span.episode, "outcome": span.outcome,
                         "actions_clipped": clipped, **span.info})


def _recorded_task(episodes: Sequence[Episode]) -> str:
    """The one task the recorder stored with these episodes (BagError if none or several)."""
    recorded = sorted({str(e.info["task"]) for e in episodes if e.info.get("task")})
    if len(recorded) == 1:
        return recorded[0]
    if not recorded:
        raise BagError("the bags name no task (recorded without one): give --task NAME")
    raise BagError(f"the bags hold episodes of several tasks {recorded}: convert them separately, or give --task NAME")


def _check_existing_rate(out: Path) -> None:
    """BagError naming the dataset's control_hz unless it is the cell's: the demonstrations were
    recorded at the cell's control period, and a dataset holds one rate (checked before any bag is read)."""
    if not (out / "meta.json").is_file():
        return
    try:
        given = read_meta(out).get("control_hz")
        if given is not None:
            load_timing().check(f"{out}/meta.json control_hz", float(given), "control_hz")
    except (DatasetError, TypeError, ValueError) as exc:
        raise BagError(f"cannot append to {out}: {exc}") from exc


def _meta(task: str, spec: ImageSpec, action_limit: float) -> dict[str, Any]:
    return {"task": task, "source": "rosbag2 demonstrations",
            "action_low": [-action_limit, -action_limit], "action_high": [action_limit, action_limit],
            "control_hz": load_timing().control_hz, "observation_keys": ["rgb"],
            "image_spec": {"height": spec.height, "width": spec.width, "crop": list(spec.crop)}}


def add_from_bags_subcommand(subparsers: argparse._SubParsersAction) -> None:
    """Register `from-bags` on ibc-data's subcommand parser (handler in args.func)."""
    parser = subparsers.add_parser("from-bags", help="convert recorded rosbag2 demonstrations to a dataset",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bags", nargs="+", help="bag folders, or folders holding bag folders")
    parser.add_argument("--out", required=True, help="dataset directory (created or appended to)")
    parser.add_argument("--task", default=None,
                        help="task name stored in meta.json (default: the task the recorder stored in the bags: "
                             "record_demos sim:=true records its sim task, e.g. push_pixels; the real cell push_pixels_real)")
    default = ImageSpec()
    parser.add_argument("--height", type=int, default=default.height, help="policy image height")
    parser.add_argument("--width", type=int, default=default.width, help="policy image width")
    parser.add_argument("--crop", type=float, nargs=4, default=list(default.crop), metavar=("X0", "Y0", "X1", "Y1"),
                        help="crop as fractions of the frame (must match the policy's image_spec)")
    parser.add_argument("--controller-config", default=None,
                        help="controller YAML whose envelope the actions go through (max_setpoint_step: also "
                             "the dataset's action limits; default: the installed config/controller.yaml)")
    parser.add_argument("--skip-unfinished", action="store_true",
                        help="drop unfinished episodes (recorder killed mid-episode) instead of converting "
                             "their recovered part as failures")
    parser.set_defaults(func=run_from_bags)


def run_from_bags(args: argparse.Namespace) -> int:
    spec = ImageSpec(args.height, args.width, tuple(args.crop))
    try:
        spec.validate()
    except ValueError as exc:
        raise SystemExit(f"ibc-data from-bags: {exc}") from exc
    controller = load_controller_config(args.controller_config)
    try:
        report = convert_bags(args.bags, args.out, spec, args.task, controller,
                              include_unfinished=not args.skip_unfinished)
    except BagError as exc:
        raise SystemExit(f"ibc-data from-bags: {exc}") from exc
    print(report.summary())
    return 0
