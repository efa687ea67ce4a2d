"""ibc-replay: publish a bag's topics with their original timing (like `ros2 bag play`).

    ibc-replay BAG [--rate 2.0] [--topics camera/image_raw ...] [--remap /a:=/b] [--restamp]

Messages go out as the recorded CDR bytes (no decode/re-encode), each at
start + (log_time - first_log_time) / rate. Pacing is cell/recording/replay.py (no ROS); the
publishing loop is ibc_ros/nodes/replay_publisher.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from cell.recording.bag_io import BagError, BagReader
from cell.recording.bag_to_dataset import resolve_topic
from cell.recording.replay import CLOCK_TOPIC, ReplayClock, Restamper


def parse_remaps(remaps: Sequence[str]) -> dict[str, str]:
    pairs = {}
    for remap in remaps:
        source, sep, target = remap.partition(":=")
        if not sep or not source or not target:
            raise BagError(f"remap {remap!r} must look like FROM:=TO")
        pairs[source] = target
    return pairs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ibc-replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bag", help="rosbag2 folder (MCAP or sqlite3) or .mcap/.db3 file")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (2 = twice as fast)")
    parser.add_argument("--topics", nargs="+", default=None,
                        help="replay only these topics (relative names match any namespace)")
    parser.add_argument("--remap", nargs="+", default=[], help="FROM:=TO topic renames (recorded names)")
    parser.add_argument("--restamp", action="store_true",
                        help="move header stamps to this machine's wall time (nodes not on sim time take "
                             "the recording for a live stream; /clock is then not replayed)")
    parser.add_argument("--wait-subscribers", type=float, default=5.0, metavar="SECONDS",
                        help="wait up to this long for subscribers on every replayed topic")
    parser.add_argument("--subscribers", type=int, default=1, metavar="N",
                        help="subscribers each replayed topic needs before playback starts (e.g. 2 for "
                             "a node under test plus a recorder); volatile topics lose what is sent before")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        clock = ReplayClock(args.rate)
        if args.subscribers < 0:
            raise ValueError(f"--subscribers must be 0 or more, got {args.subscribers}")
        remaps = parse_remaps(args.remap)
        reader = BagReader(Path(args.bag))
    except (BagError, ValueError) as exc:
        raise SystemExit(f"ibc-replay: {exc}") from exc
    with reader:
        from ibc_ros.nodes.replay_publisher import publish_bag  # rclpy only past this point
        try:
            topics = [resolve_topic(list(reader.topics), t, reader.path) for t in args.topics] \
                if args.topics else list(reader.topics)
            restamper = Restamper(args.rate, clock=clock) if args.restamp else None
            if restamper is not None and CLOCK_TOPIC in topics:
                topics.remove(CLOCK_TOPIC)
                print(f"ibc-replay: --restamp: not replaying {CLOCK_TOPIC} (stamps are now wall time)", file=sys.stderr)
            return publish_bag(reader, topics, remaps, clock, args.wait_subscribers, args.subscribers, restamper)
        except BagError as exc:
            raise SystemExit(f"ibc-replay: {exc}") from exc


if __name__ == "__main__":
    sys.exit(main())
