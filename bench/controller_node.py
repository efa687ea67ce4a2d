"""Period error of the ROS controller node (ibc_ros/nodes/controller_node.py) over real DDS
and ROS timers: starts `controller_node` as its own process, streams 5 Hz setpoint deltas to
it and records every joint_command for --seconds.

  stamp interval error    |difference of consecutive header stamps - 10 ms|: when the node's
                          timer actually fired (its own jitter);
  arrival interval error  the same for the arrival times in this process (adds DDS delivery
                          and this process's scheduling);
  latency                 arrival - stamp (same host clock).

    ./run.sh python -m bench.controller_node --seconds 20
"""
from __future__ import annotations

import argparse
import os
import subprocess
import threading
import time
from typing import Any, Optional, Sequence

import numpy as np
import rclpy
from geometry_msgs.msg import Vector3Stamped
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState

from bench.common import finish, machine, percentiles
from cell.processes import stop
from cell.timing import load_timing
from ibc_ros.nodes.common import setpoint_delta_msg

PERIOD_S = load_timing().controller_period_s


def interval_errors(times: np.ndarray) -> list[float]:
    return list(np.abs(np.diff(times) - PERIOD_S))


def record(seconds: float, warmup: float) -> dict[str, Any]:
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bench_controller_node", context=context)
    arrivals: list[tuple[float, float]] = []
    node.create_subscription(JointState, "joint_command", lambda msg: arrivals.append(
        (time.time(), msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)), 100)
    setpoints = node.create_publisher(Vector3Stamped, "setpoint_delta", 10)
    rng = np.random.default_rng(0)

    def send_setpoint() -> None:
        setpoints.publish(setpoint_delta_msg(rng.uniform(-0.02, 0.02, 2), node.get_clock().now().to_msg()))
    node.create_timer(load_timing().control_period_s, send_setpoint)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=lambda: executor.spin(), daemon=True)
    spinner.start()
    proc = subprocess.Popen(["controller_node"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.time() + 30.0
        while not arrivals and time.time() < deadline:
            time.sleep(0.1)
        if not arrivals:
            raise RuntimeError("controller_node published no joint_command within 30 s")
        time.sleep(warmup)
        start = len(arrivals)
        time.sleep(seconds)
        window = np.asarray(arrivals[start:])
    finally:
        stop(proc, timeout=10)
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
    arrival, stamp = window[:, 0], window[:, 1]
    return {"messages": len(window), "expected": int(seconds / PERIOD_S),
            "stamp_interval_error": percentiles(interval_errors(stamp)),
            "arrival_interval_error": percentiles(interval_errors(arrival)),
            "latency": percentiles(list(arrival - stamp))}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 60))  # away from other runs
    report = {"benchmark": "controller_node", "ros_domain_id": os.environ["ROS_DOMAIN_ID"],
              "machine": machine(), **record(args.seconds, args.warmup)}
    finish(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
