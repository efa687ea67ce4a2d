"""Setpoint -> joint command pipeline of the cell, run by the sim env and the ROS controller
node alike: delta setpoints (5 Hz) -> workspace clamp -> linear interpolation -> IK ->
per-cycle joint step limit -> joint positions (100 Hz)."""
from __future__ import annotations

import logging

import numpy as np

from ibc_ros.control.config import ControllerConfig
from ibc_ros.control.envelope import SafetyEnvelope
from ibc_ros.control.ik import IKError, XArmIK
from ibc_ros.control.interpolation import SetpointInterpolator

log = logging.getLogger(__name__)


class CartesianController:
    """Call ``reset`` once, then ``on_setpoint_delta`` whenever a setpoint arrives and
    ``step`` every control cycle. Times ``t`` are seconds on any monotonic clock."""

    def __init__(self, config: ControllerConfig, ik: XArmIK | None = None):
        self.config = config
        self.envelope = SafetyEnvelope(config)
        self.ik = ik or XArmIK(config.ik)
        self._interpolator = SetpointInterpolator(config.setpoint_period_s, np.zeros(3))
        self._joints = np.zeros(6)
        self._ee_target = np.zeros(3)
        self.estopped = False
        self._returning_until = -np.inf   # return_to_start: setpoints are ignored until then
        self.ik_failures = 0
        self.reset()

    @property
    def setpoint(self) -> np.ndarray:
        """The last commanded (clamped) setpoint xyz: where the interpolation is heading."""
        return self._interpolator.goal

    @property
    def joint_command(self) -> np.ndarray:
        return self._joints.copy()

    @property
    def ee_target(self) -> np.ndarray:
        return self._ee_target.copy()

    def reset(self, start_xy: np.ndarray | None = None, t: float = 0.0) -> np.ndarray:
        """Put the setpoint at ``start_xy`` (default: config.start_xy) at once, clear the e-stop
        and return the joint positions for it (the pose to move the arm to before streaming).
        The joint command jumps there: only for an arm that is (placed) at that pose; a
        streaming arm goes back with ``return_to_start``."""
        start = self.envelope.clamp_target(self.config.start_xy if start_xy is None else start_xy)
        self._joints = self.ik.solve(start, seed=np.array(self.config.ik.rest_joints))
        self._ee_target = start
        self._interpolator.reset(start, t)
        self.estopped = False
        self._returning_until = -np.inf
        return self._joints.copy()

    def return_to_start(self, t: float, speed: float) -> float:
        """Drive the commanded target from where it is at ``t`` back to config.start_xy in a
        straight line at ``speed`` m/s (the joint step limit still applies every cycle), clear
        the e-stop, and ignore setpoints until it arrives; returns the arrival time."""
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        start = self.envelope.clamp_target(self.config.start_xy)
        distance = float(np.linalg.norm(start - self._interpolator.position(t)))
        duration = max(self.config.setpoint_period_s, distance / speed)
        self._interpolator.set_goal(start, t, duration)
        self.estopped = False
        self._returning_until = t + duration
        return self._returning_until

    def returning(self, t: float) -> bool:
        """Still on the way back to the start (setpoints are ignored)."""
        return t < self._returning_until

    def on_setpoint_delta(self, delta_xy: np.ndarray, t: float) -> np.ndarray:
        """Move the setpoint by (dx, dy) metres from the previous setpoint; returns the new
        clamped setpoint. Ignored (returns the current one) while e-stopped or returning."""
        delta = self.envelope.clamp_delta(delta_xy)
        if self.estopped or self.returning(t):
            return self.setpoint
        goal = self.envelope.clamp_target(self.setpoint[:2] + delta)
        self._interpolator.set_goal(goal, t)
        return goal

    def step(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Joint command q[6] and interpolated Cartesian target xyz for time ``t``.
        Holds the last setpoint when setpoints stop."""
        # The workspace ring is not convex: a straight segment between two clamped setpoints
        # can cut inside its inner radius (measured 29 mm), so every cycle's target is clamped.
        target = self.envelope.clamp_target(self._interpolator.position(t))
        try:
            solution = self.ik.solve(target)
        except IKError as exc:
            # Unreachable despite the envelope: hold the arm where it is commanded now.
            self.ik_failures += 1
            log.warning("holding position: %s", exc)
            return self._joints.copy(), self._ee_target.copy()
        self._joints = self.envelope.limit_joint_step(self._joints, solution)
        self._ee_target = target
        return self._joints.copy(), target.copy()

    def estop(self, t: float) -> None:
        """Stop at the currently commanded point and ignore setpoints until a reset."""
        self._interpolator.hold(t)
        self.estopped = True
        self._returning_until = -np.inf
