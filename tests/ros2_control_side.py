"""The ros2_control side of the controller node's topic contract, in its own process over real DDS
(tests/test_ros_ros2_control.py starts it): what xarm_ros2's cell shows our controller.

  * joint_states as the joint_state_broadcaster publishes them: every arm joint plus a gripper's
    `drive_joint`, the names in a new shuffled order in every message, at --rate Hz;
  * the controller's command topic: <controller>/joint_trajectory (trajectory_msgs/JointTrajectory,
    a JointTrajectoryController) or <controller>/commands (std_msgs/Float64MultiArray, a forward
    position controller). The simulated arm takes each target as reached by the next joint_states
    (a JointTrajectoryController reaches a one-cycle point within its time_from_start);
  * it checks every command and writes what it saw to --report (JSON, replaced atomically):
    joint names and order, one point with time_from_start = one control period and a zero stamp
    (start on arrival), the arm's limits (config/arm_limits.yaml: joint limits, tip box by forward
    kinematics), the per-cycle step of controller.yaml from the previous command - or else a restart
    exactly at a pose this side published (the documented restart rule) - and, per phase, how many
    commands came and over how long (the rate).

The test steers it with --control, a file holding one mode: `run` (publish, follow), `stop`
(publish nothing: joint_states stop), `freeze` (publish, but the arm no longer follows),
`nudge` (`run`, after moving the arm NUDGE rad on joint1 - another tool moved it meanwhile).

    python -m tests.ros2_control_side --output joint_trajectory --control FILE --report FILE
"""
from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from cell.control import ArmLimits, CartesianController, load_arm_limits, load_controller_config
from cell.hardware.ros2_control_output import ArmOutputConfig, duration_parts
from ibc_ros.nodes.common import run_node

MODES = ("run", "stop", "freeze", "nudge")
NUDGE = 0.1          # rad on joint1: more than one cycle's step, so only a restart from the measured pose explains it
RECENT_POSES = 50    # published poses a restart may start from (0.5 s of joint_states)
EXACT = 1e-12        # rad: a restart sends the measured positions themselves


class Ros2ControlSide(Node):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__("joint_state_broadcaster")
        self.args = args
        output = ArmOutputConfig(output=args.output, controller=args.controller, joint_prefix=args.prefix)
        self.names = list(output.joint_names)
        config = load_controller_config()
        controller = CartesianController(config)
        self.arm = controller.reset()              # the controller's start pose: where the arm stands
        self.limits = ArmLimits(load_arm_limits(config.limits_file), kinematics=controller.ik)
        self.max_step = config.max_joint_step
        self.time_from_start = duration_parts(config.period_s)
        self.rng = random.Random(0)
        self.mode, self.phase = "run", 0
        self.recent: list[np.ndarray] = []
        self.previous: np.ndarray | None = None
        self.report = {"names": self.names, "topic": output.command_topic, "commands": 0, "violations": [],
                       "restarts": 0, "max_lead": 0.0, "phases": [], "joint_states": 0,
                       "last_joint_states": None, "after_stop": 0}
        self._begin_phase("run")
        message_type = JointTrajectory if args.output == "joint_trajectory" else Float64MultiArray
        self.create_subscription(message_type, output.command_topic, self._on_command, 100)
        self.joint_pub = self.create_publisher(JointState, "joint_states", 10)
        self.create_timer(1.0 / args.rate, self._tick)
        self.create_timer(0.1, self._write_report)

    # ------------------------------------------------------------------ the arm's side
    def _tick(self) -> None:
        self._read_mode()
        if self.mode == "stop":
            return
        order = self.names + ["drive_joint"]
        self.rng.shuffle(order)
        by_name = dict(zip(self.names, self.arm.tolist()), drive_joint=0.0)
        msg = JointState(name=order, position=[by_name[name] for name in order])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.joint_pub.publish(msg)
        self.recent = (self.recent + [self.arm.copy()])[-RECENT_POSES:]
        self.report["joint_states"] += 1
        self.report["last_joint_states"] = time.monotonic()

    def _read_mode(self) -> None:
        try:
            mode = Path(self.args.control).read_text().strip()
        except FileNotFoundError:
            return
        if mode in MODES and mode != self.mode:
            if mode == "nudge":
                self.arm = self.arm + np.array([NUDGE, 0, 0, 0, 0, 0])
            self.mode = mode
            self._begin_phase(mode)

    def _begin_phase(self, mode: str) -> None:
        self.phase += 1
        self.report["phases"].append({"mode": mode, "commands": 0, "first": None, "last": None, "restarts": 0})

    # ------------------------------------------------------------------ the controller's commands
    def _on_command(self, msg) -> None:
        arrival = time.monotonic()
        q = self._positions(msg)
        if q is None:
            return
        self._check_motion(q)
        phase = self.report["phases"][-1]
        phase["commands"] += 1
        phase["first"] = phase["first"] or arrival
        phase["last"] = arrival
        self.report["commands"] += 1
        self.report["last_command"] = q.tolist()
        if self.mode == "stop":
            self.report["after_stop"] += 1
        lead = float(np.max(np.abs(q - self.arm)))
        if self.mode == "freeze":
            self.report["max_lead"] = max(self.report["max_lead"], lead)
        else:
            self.arm = q.copy()       # reached within the cycle
        self.previous = q

    def _positions(self, msg) -> np.ndarray | None:
        if isinstance(msg, Float64MultiArray):
            values = list(msg.data)
        else:
            if list(msg.joint_names) != self.names:
                return self._violation(f"joint names {list(msg.joint_names)}, expected {self.names}")
            if len(msg.points) != 1:
                return self._violation(f"{len(msg.points)} points, expected one per cycle")
            point = msg.points[0]
            if (point.time_from_start.sec, point.time_from_start.nanosec) != self.time_from_start:
                return self._violation(f"time_from_start {point.time_from_start}, expected one period")
            if (msg.header.stamp.sec, msg.header.stamp.nanosec) != (0, 0):
                return self._violation("a header stamp: the controller would start the point then, not on arrival")
            values = list(point.positions)
        if len(values) != len(self.names):
            return self._violation(f"{len(values)} positions, expected {len(self.names)}")
        return np.asarray(values, dtype=float)

    def _check_motion(self, q: np.ndarray) -> None:
        reason = self.limits.pose_violation(q)
        if reason is not None:
            self._violation(f"beyond the arm's limits: {reason}")
        if self.previous is None or np.max(np.abs(q - self.previous)) <= self.max_step + 1e-9:
            return
        if any(np.max(np.abs(q - pose)) <= EXACT for pose in self.recent):
            self.report["restarts"] += 1   # a restart exactly at a measured pose
            self.report["phases"][-1]["restarts"] += 1
        else:
            self._violation(f"a step of {np.max(np.abs(q - self.previous)):.4f} rad (max_joint_step {self.max_step}) "
                            "that starts from no measured pose")

    def _violation(self, what: str) -> None:
        if len(self.report["violations"]) < 50:
            self.report["violations"].append(what)
        return None

    def _write_report(self) -> None:
        path = Path(self.args.report)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(self.report))
        os.replace(partial, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", choices=["joint_trajectory", "forward_position"], required=True)
    parser.add_argument("--controller", default="")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--control", required=True)
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    run_node(lambda: Ros2ControlSide(args), [])


if __name__ == "__main__":
    main()
