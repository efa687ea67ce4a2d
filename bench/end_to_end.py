"""End-to-end latency of the simulated stack: camera frame stamp -> first joint_command that
uses the action computed from that frame.

Starts `ibc-ros launch real_push sim:=true policy:=<checkpoint>` (real nodes, real DDS) and
records, for --seconds: setpoint_delta (its stamp is the stamp of the frame it came from), the
100 Hz joint_command stream, /clock (to measure the real-time factor the sim achieved) and the
policy node's own policy/latency and policy/inference_time. For every setpoint the latency is
(stamp of the first joint_command stamped after the setpoint reached this process) - (frame
stamp) in the stack's clock (sim time, which slows down when the machine cannot keep up), and
in wall time: that command's arrival here - the frame's arrival here (frames are received
here too; DDS delivery of the frame is therefore not counted). The controller applies a
setpoint on the next 10 ms tick after it arrives, so the estimate resolves to one tick.

    ./run.sh python -m bench.end_to_end --policy policies/push_pixels.pt --seconds 60
"""
from __future__ import annotations

import argparse
import bisect
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
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32

from bench.common import finish, machine, percentiles
from cell.processes import stop


def seconds_of(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class Recorder:
    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("bench_end_to_end", context=self.context)
        self.clock: list[tuple[float, float]] = []          # (wall, sim)
        self.setpoints: list[tuple[float, float]] = []      # (sim time of arrival, frame stamp)
        self.commands: list[tuple[float, float]] = []       # (joint_command stamp, wall arrival)
        self.frames: dict[float, float] = {}                # frame stamp -> wall arrival
        self.policy_latency: list[float] = []
        self.inference_time: list[float] = []
        self.node.create_subscription(Clock, "/clock", self._on_clock, qos_profile_sensor_data)
        self.node.create_subscription(Vector3Stamped, "setpoint_delta", self._on_setpoint, 10)
        self.node.create_subscription(JointState, "joint_command", lambda m: self.commands.append(
            (seconds_of(m.header.stamp), time.time())), 100)
        self.node.create_subscription(Image, "camera/image_raw", lambda m: self.frames.__setitem__(
            seconds_of(m.header.stamp), time.time()), qos_profile_sensor_data)
        self.node.create_subscription(Float32, "policy/latency", lambda m: self.policy_latency.append(m.data), 10)
        self.node.create_subscription(Float32, "policy/inference_time",
                                      lambda m: self.inference_time.append(m.data), 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def _on_clock(self, msg: Clock) -> None:
        self.clock.append((time.time(), seconds_of(msg.clock)))

    def _on_setpoint(self, msg: Vector3Stamped) -> None:
        if self.clock:  # arrival in the stack's clock: the latest /clock tick (10 ms resolution)
            self.setpoints.append((self.clock[-1][1], seconds_of(msg.header.stamp)))

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


def latencies(setpoints: list[tuple[float, float]], commands: list[tuple[float, float]],
              frames: dict[float, float]) -> tuple[list[float], list[float]]:
    """Per setpoint: (first later joint_command stamp - frame stamp) in the stack's clock, and
    (that command's wall arrival - the frame's wall arrival here) where the frame was seen."""
    commands = sorted(commands)
    stamps = [stamp for stamp, _ in commands]
    stack, wall = [], []
    for arrival, frame_stamp in setpoints:
        index = bisect.bisect_right(stamps, arrival)
        if index < len(commands):
            stack.append(commands[index][0] - frame_stamp)
            if frame_stamp in frames:
                wall.append(commands[index][1] - frames[frame_stamp])
    return stack, wall


def achieved_real_time_factor(clock: list[tuple[float, float]]) -> float:
    (wall0, sim0), (wall1, sim1) = clock[0], clock[-1]
    return (sim1 - sim0) / max(wall1 - wall0, 1e-9)


def run_stack(policy: str, seconds: float, warmup: float, extra: Sequence[str]) -> dict[str, Any]:
    recorder = Recorder()
    argv = ["ibc-ros", "launch", "real_push", "sim:=true", f"policy:={policy}", *extra]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120.0
        while not recorder.setpoints and time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the stack exited with {proc.returncode}: {' '.join(argv)}")
            time.sleep(0.2)
        if not recorder.setpoints:
            raise RuntimeError("no setpoint_delta within 120 s of starting the stack")
        time.sleep(warmup)
        marks = (len(recorder.setpoints), len(recorder.clock), len(recorder.policy_latency))
        time.sleep(seconds)
        setpoints, clock = recorder.setpoints[marks[0]:], recorder.clock[marks[1]:]
        commands, frames = list(recorder.commands), dict(recorder.frames)
        policy_latency, inference = recorder.policy_latency[marks[2]:], recorder.inference_time[marks[2]:]
    finally:
        stop(proc, timeout=20)
        recorder.close()
    rtf = achieved_real_time_factor(clock)
    stack_latency, wall_latency = latencies(setpoints, commands, frames)
    return {"command": " ".join(argv), "setpoints": len(setpoints), "achieved_real_time_factor": rtf,
            # lock-step: each 10 ms sim tick waits for the controller's joint_command over DDS
            "sim_tick_wall": percentiles(np.diff([wall for wall, _ in clock]).tolist()),
            "frame_to_joint_command_stack_clock": percentiles(stack_latency),
            "frame_to_joint_command_wall": percentiles(wall_latency) if wall_latency else None,
            "policy_node_latency_stack_clock": percentiles(policy_latency) if policy_latency else None,
            "policy_inference_wall": percentiles(inference) if inference else None}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default="policies/push_pixels.pt")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--json", help="also write the report here")
    parser.add_argument("launch_args", nargs="*", help="extra name:=value launch arguments")
    args = parser.parse_intermixed_args(argv)
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 60))  # away from other runs
    report = {"benchmark": "end_to_end", "policy": args.policy, "ros_domain_id": os.environ["ROS_DOMAIN_ID"],
              "machine": machine(), **run_stack(args.policy, args.seconds, args.warmup, args.launch_args)}
    finish(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
