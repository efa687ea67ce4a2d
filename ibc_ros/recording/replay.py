"""ibc-replay: publish a bag's topics with their original timing (like `ros2 bag play`).

    ibc-replay BAG [--rate 2.0] [--topics camera/image_raw ...] [--remap /a:=/b] [--restamp]

Messages go out as the recorded CDR bytes (no decode/re-encode), each at
start + (log_time - first_log_time) / rate. Pacing (ReplayClock) is ROS-free; the publishing
loop lives in ibc_ros/nodes/replay_publisher.py.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence


from ibc_ros.recording.bag_io import BagError, BagMessage, BagReader, deserialize, serialize
from ibc_ros.recording.bag_to_dataset import resolve_topic


CLOCK_TOPIC = "/clock"


class ReplayClock:
    """When each message is due: wall start + (log time - first log time) / rate."""

    def __init__(self, rate: float, now: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, wall_ns: Callable[[], int] = time.time_ns):
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self._now = now
        self._sleep = sleep
        self._wall_ns = wall_ns
        self._origin: tuple[float, int] | None = None   # (wall start, first log time)
        self._origin_wall_ns = 0                         # the wall clock (time_ns) at that start

    def due(self, log_time_ns: int) -> float:
        if self._origin is None:
            self._origin = (self._now(), log_time_ns)
            self._origin_wall_ns = self._wall_ns()
        wall_start, first_log = self._origin
        return wall_start + (log_time_ns - first_log) / 1e9 / self.rate

    def due_wall_ns(self, time_ns: int) -> int:
        """Wall-clock time (ns) at which a message logged at ``time_ns`` is due; the origin is
        the first message due (due()/wait_for() must have been called once)."""
        if self._origin is None:
            raise RuntimeError("due_wall_ns before the first message was due")
        return self._origin_wall_ns + round((time_ns - self._origin[1]) / self.rate)

    def wait_for(self, log_time_ns: int) -> float:
        """Sleep until the message is due; returns how late it is then (s, >= 0 normally)."""
        due = self.due(log_time_ns)
        remaining = due - self._now()
        if remaining > 0:
            self._sleep(remaining)
        return self._now() - due


class Restamper:
    """--restamp: every header stamp moves to replay time, first log time -> wall time at the
    first message (with ``clock``, as ibc-replay does: the wall time at which the pacing clock
    started), spacing divided by rate (as the pacing). Nodes running on wall time (the
    policy's max_frame_age, the controller's setpoint age) then take a recording for a live
    stream. Messages without a header, and zero (unset) stamps, pass unchanged."""

    def __init__(self, rate: float, wall_ns: Callable[[], int] = time.time_ns, clock: ReplayClock | None = None):
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self._wall_ns = wall_ns
        self._clock = clock
        self._origin: tuple[int, int] | None = None   # (wall ns at the first message, its log time)

    def stamp_ns(self, recorded_ns: int, log_time_ns: int) -> int:
        if self._clock is not None:
            # The pacing clock's origin: a stamp is never later than the wall time its message is
            # due. (Taking the wall clock at the first restamp instead put every stamp ahead by
            # however long that first message took to decode - 0.17 s measured, building the
            # message type store - and the policy rightly refused the frames as from the future.)
            return self._clock.due_wall_ns(recorded_ns)
        if self._origin is None:
            self._origin = (self._wall_ns(), log_time_ns)
        wall_start, first_log = self._origin
        return wall_start + round((recorded_ns - first_log) / self.rate)

    def restamp(self, message: BagMessage) -> bytes:
        msg = deserialize(message.data, message.msgtype)
        header = getattr(msg, "header", None)
        stamp = getattr(header, "stamp", None)
        if stamp is None or not hasattr(stamp, "nanosec"):
            self.stamp_ns(message.log_time_ns, message.log_time_ns)  # the origin is the first message either way
            return message.data
        recorded = stamp.sec * 1_000_000_000 + stamp.nanosec
        if recorded == 0:
            return message.data
        new = self.stamp_ns(recorded, message.log_time_ns)
        stamp.sec, stamp.nanosec = divmod(new, 1_000_000_000)
        return serialize(msg, message.msgtype)


def paced(messages: Iterable[BagMessage], clock: ReplayClock) -> Iterator[tuple[BagMessage, float]]:
    for message in messages:
        yield message, clock.wait_for(message.log_time_ns)


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
