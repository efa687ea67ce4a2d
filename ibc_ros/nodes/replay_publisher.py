"""The rclpy side of ibc-replay: publish a bag's raw CDR messages on their topics, paced by
cell.recording.replay.ReplayClock."""
from __future__ import annotations

import importlib
import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile, ReliabilityPolicy
from tqdm import tqdm

from cell.recording.bag_io import BagError, BagReader
from cell.recording.replay import ReplayClock, Restamper, paced


def message_class(msgtype: str) -> type:
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    package, _, name = msgtype.rpartition("/")
    try:
        return getattr(importlib.import_module(package.replace("/", ".")), name)
    except (ImportError, AttributeError) as exc:
        raise BagError(f"message type {msgtype} is not installed in this ROS environment") from exc


def publish_bag(reader: BagReader, topics: list[str], remaps: dict[str, str], clock: ReplayClock,
                wait_s: float, subscribers: int = 1, restamper: Restamper | None = None) -> int:
    classes = {t: message_class(reader.topics[t]) for t in topics}
    rclpy.init()
    node = rclpy.create_node("ibc_replay")
    try:
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        publishers = {t: node.create_publisher(classes[t], remaps.get(t, t), qos) for t in topics}
        _wait_for_subscribers(node, publishers, wait_s, subscribers)
        worst = 0.0
        count = 0
        for message, lateness in tqdm(paced(reader.messages(topics), clock), desc="replaying",
                                      unit="msg", file=sys.stderr):
            publishers[message.topic].publish(restamper.restamp(message) if restamper else message.data)
            worst, count = max(worst, lateness), count + 1
        node.get_logger().info(f"replayed {count} messages from {reader.path}; "
                               f"worst lateness {worst * 1000:.1f} ms")
        time.sleep(0.5)  # let reliable DDS deliver the tail before the node goes away
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _wait_for_subscribers(node: Node, publishers: dict[str, Publisher], wait_s: float, wanted: int) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if all(p.get_subscription_count() >= wanted for p in publishers.values()):
            return
        time.sleep(0.05)
    counts = {t: p.get_subscription_count() for t, p in publishers.items()}
    short = {t: count for t, count in counts.items() if count < wanted}
    if short:
        node.get_logger().warning(f"starting with fewer than {wanted} subscribers on {short}")
