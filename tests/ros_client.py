"""The test process's own rclpy node: publish, collect, call services, wait on conditions.

Real rclpy over real DDS (the domain comes from tests/conftest.py); the nodes under test run in
separate processes (tests/ros_processes.py). One private rclpy Context per client, spun in a
background thread, so tests can block on plain Python conditions.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile


class RosClient:
    def __init__(self, name: str = "test_client") -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._subscriptions: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # context shut down mid-spin
                if self.context.ok():
                    raise

    def __enter__(self) -> "RosClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown() if hasattr(self.context, "try_shutdown") else rclpy.shutdown(context=self.context)
        self._thread.join(timeout=2.0)

    def now(self):
        return self.node.get_clock().now()

    def publisher(self, msg_type: Any, topic: str, qos: QoSProfile | int = 10):
        return self.node.create_publisher(msg_type, topic, qos)

    def collect(self, msg_type: Any, topic: str, qos: QoSProfile | int = 50) -> list:
        """Every message arriving on topic, with its arrival time as attribute-free tuples."""
        received: list = []
        self._subscriptions[topic] = self.node.create_subscription(msg_type, topic, received.append, qos)
        return received

    def publishers_matched(self, topic: str) -> int:
        """Publishers matched with this client's collect() subscription on topic: once > 0, a
        reliable publisher's messages reach the list (volatile QoS loses those sent before)."""
        return self._subscriptions[topic].get_publisher_count()

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = 20.0) -> Any:
        client = self.node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {name} not available within {timeout} s")
        future = client.call_async(request)
        wait_for(future.done, timeout, f"reply from {name}")
        return future.result()


def wait_for(condition: Callable[[], bool], timeout: float, what: str, period: float = 0.02) -> None:
    """Poll condition until true; TimeoutError naming what was awaited (no wall-clock asserts)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(period)


def quiet_since(received: list, quiet_s: float, timeout: float, what: str) -> None:
    """Wait until no message has arrived in ``received`` for quiet_s (a loaded machine may still
    be delivering a backlog); TimeoutError naming what was awaited if it never goes quiet."""
    deadline = time.monotonic() + timeout
    count, since = len(received), time.monotonic()
    while time.monotonic() - since < quiet_s:
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
        if len(received) != count:
            count, since = len(received), time.monotonic()


def steady(messages: list, value: Callable[[Any], Any], count: int = 10) -> bool:
    """The last `count` messages carry the same value(msg): a node holding still (however late
    a loaded machine delivers), checked without any wall-clock bound."""
    last = [tuple(value(m)) for m in messages[-count:]]
    return len(last) == count and len(set(last)) == 1
