"""Controller timing (cell/control, ROS-free): compute per 100 Hz cycle (interpolation + IK)
and the period error of a 100 Hz loop running it.

  reference  the straightforward cycle: the same interpolation, then PyBullet's own
             calculateInverseKinematics (full tip pose, 50 iterations) on a private client;
  optimised  CartesianController.step (cell.control: warm-started damped least squares on
             the tip Jacobian, tool axis only, plus the safety envelope's joint-step limit).

Part 1 times both cycles interleaved on the same setpoint stream (ratio of p50s). Part 2 runs
the optimised controller in a 100 Hz loop with absolute deadlines (sleep until the next
tick) for --seconds and reports |actual - ideal| tick time and the period error. The ROS node's
period error over real DDS/timers: bench/controller_node.py.

    ./run.sh python -m bench.controller --cycles 500 --seconds 10
"""
from __future__ import annotations

import argparse
import time
from typing import Any, Optional, Sequence

import numpy as np
import pybullet
from pybullet_utils.bullet_client import BulletClient

from bench.common import finish, interleaved, machine, percentiles
from cell.control import CartesianController, load_controller_config
from cell.control.config import ControllerConfig
from cell.control.interpolation import SetpointInterpolator
from cell.control.robot_description import joint_indices, link_index, resolved_urdf_path


class ReferenceCycle:
    """Interpolation + pybullet.calculateInverseKinematics for the tip pose."""

    def __init__(self, config: ControllerConfig):
        self.config = config
        self.client = BulletClient(connection_mode=pybullet.DIRECT)
        self.robot = self.client.loadURDF(str(resolved_urdf_path(config.ik.urdf)), useFixedBase=True)
        self.joints = joint_indices(self.client, self.robot)
        self.tip = link_index(self.client, self.robot, config.ik.tip_link)
        self.interpolator = SetpointInterpolator(config.setpoint_period_s, np.zeros(3))

    def reset(self, start: np.ndarray, t: float) -> None:
        for index, value in zip(self.joints, self.config.ik.rest_joints):
            self.client.resetJointState(self.robot, index, float(value))
        self.interpolator.reset(start, t)

    def step(self, t: float) -> np.ndarray:
        target = self.interpolator.position(t)
        solution = self.client.calculateInverseKinematics(
            self.robot, self.tip, target.tolist(), list(self.config.ik.tip_orientation),
            maxNumIterations=self.config.ik.max_iterations, residualThreshold=self.config.ik.residual_threshold)
        q = np.asarray(solution[:len(self.joints)])
        for index, value in zip(self.joints, q):  # warm start the next call, as a servo loop would
            self.client.resetJointState(self.robot, index, float(value))
        return q


def setpoint_stream(config: ControllerConfig, count: int, seed: int = 0) -> np.ndarray:
    """Random-walk delta setpoints (m), as a 5 Hz policy would send them."""
    return np.random.default_rng(seed).uniform(-0.03, 0.03, size=(count, 2))


def compute_per_cycle(config: ControllerConfig, cycles: int) -> dict[str, Any]:
    optimised, reference = CartesianController(config), ReferenceCycle(config)
    optimised.reset(t=0.0)
    reference.reset(optimised.setpoint, 0.0)
    period, per_setpoint = config.period_s, int(round(config.setpoint_period_s / config.period_s))
    deltas = setpoint_stream(config, cycles // per_setpoint + 1)

    solutions: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"reference": [], "optimised": []}

    def tick(name, controller_step, on_setpoint, target):
        def run(cycle: int) -> None:
            t = cycle * period
            if cycle % per_setpoint == 0:
                on_setpoint(deltas[cycle // per_setpoint], t)
            q = controller_step(t)
            solutions[name].append((np.asarray(q), target(t)))  # accuracy is checked after timing
        return run

    def reference_setpoint(delta: np.ndarray, t: float) -> None:
        goal = optimised.envelope.clamp_target(reference.interpolator.goal[:2] + optimised.envelope.clamp_delta(delta))
        reference.interpolator.set_goal(goal, t)

    times = interleaved({
        "reference": tick("reference", reference.step, reference_setpoint, reference.interpolator.position),
        "optimised": tick("optimised", lambda t: optimised.step(t)[0], optimised.on_setpoint_delta,
                          optimised._interpolator.position)}, cycles, warmup=0)
    result: dict[str, Any] = {name: percentiles(values) for name, values in times.items()}
    result["ratio_p50"] = result["optimised"]["p50_ms"] / result["reference"]["p50_ms"]
    result["ik_failures"] = optimised.ik_failures
    for name, pairs in solutions.items():  # tip error of each commanded q, by forward kinematics
        errors_mm = [1e3 * float(np.linalg.norm(optimised.ik.forward(q) - target)) for q, target in pairs]
        result[name]["tip_error_mm_p50"] = float(np.median(errors_mm))
        result[name]["tip_error_mm_max"] = float(np.max(errors_mm))
    optimised.ik.close()
    reference.client.disconnect()
    return result


def loop_period_error(config: ControllerConfig, seconds: float) -> dict[str, Any]:
    """A 100 Hz loop with absolute deadlines (no drift) running the optimised cycle."""
    controller = CartesianController(config)
    period, per_setpoint = config.period_s, int(round(config.setpoint_period_s / config.period_s))
    cycles = int(seconds / period)
    deltas = setpoint_stream(config, cycles // per_setpoint + 1, seed=1)
    start = time.monotonic()
    controller.reset(t=0.0)
    ticks, compute = [], []
    for cycle in range(cycles):
        deadline = start + (cycle + 1) * period
        delay = deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        woke = time.monotonic()
        ticks.append(woke - deadline)
        if cycle % per_setpoint == 0:
            controller.on_setpoint_delta(deltas[cycle // per_setpoint], woke - start)
        controller.step(woke - start)
        compute.append(time.monotonic() - woke)
    controller.ik.close()
    intervals = np.diff(np.asarray(ticks)) + period
    return {"cycles": cycles, "tick_lateness": percentiles(ticks),
            "period_error": percentiles(list(np.abs(intervals - period))),
            "compute": percentiles(compute), "overruns": int(np.sum(np.asarray(compute) > period))}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="ControllerConfig YAML (default: config/controller.yaml)")
    parser.add_argument("--cycles", type=int, default=500, help="cycles timed per side (part 1)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the 100 Hz loop (part 2; 0: skip)")
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)
    config = load_controller_config(args.config)
    report: dict[str, Any] = {"benchmark": "controller", "rate_hz": config.rate_hz, "machine": machine(),
                              "compute_per_cycle": compute_per_cycle(config, args.cycles)}
    if args.seconds > 0:
        report["loop_100hz"] = loop_period_error(config, args.seconds)
    finish(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
