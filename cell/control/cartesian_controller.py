"""Setpoint -> joint command pipeline of the cell, run by the sim env and the ROS controller
node alike: delta setpoints (5 Hz) -> workspace clamp -> linear interpolation -> tip speed limit
(per unit of time, whatever arrives) -> IK -> per-cycle joint step limit -> the arm's hard limits
(cell.control.arm_limits: joint velocity, acceleration, tip speed, joint limits, tip box - the
check the driver and the sim's arm apply) -> joint positions (100 Hz).

The e-stop latches: setpoints are ignored and reset() / return_to_start() raise EStopLatched
until release_estop()."""
from __future__ import annotations

import logging

import numpy as np

from cell.control.arm_limits import ArmLimits, load_arm_limits
from cell.control.config import ControllerConfig
from cell.control.envelope import SafetyEnvelope
from cell.control.ik import IKError, XArmIK
from cell.control.interpolation import SetpointInterpolator

log = logging.getLogger(__name__)


class EStopLatched(RuntimeError):
    """The e-stop is latched: only release_estop() (the operator's explicit release) clears it."""


class StartRefused(ValueError):
    """start_at() will not start from the measured pose; the message says why."""


class CartesianController:
    """Call ``reset`` once, then ``on_setpoint_delta`` whenever a setpoint arrives and
    ``step`` every control cycle. Times ``t`` are seconds on any monotonic clock."""

    def __init__(self, config: ControllerConfig, ik: XArmIK | None = None, limits: ArmLimits | None = None):
        self.config = config
        self.envelope = SafetyEnvelope(config)
        self.ik = ik or XArmIK(config.ik)
        self.limits = limits or ArmLimits(load_arm_limits(config.limits_file), kinematics=self.ik)
        _check_workspace_inside(config, self.limits)
        self._last_t: float | None = None   # time of the last step (the tip speed limit's reference)
        self._lagging = False               # the tip speed limit held the target back last step
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
        """Put the setpoint at ``start_xy`` (default: config.start_xy) at once and return the
        joint positions for it (the pose to move the arm to before streaming).
        The joint command jumps there: only for an arm that is (placed) at that pose; a
        streaming arm goes back with ``return_to_start``. Raises EStopLatched while latched."""
        if self.estopped:
            raise EStopLatched("e-stop latched: release it first (controller/release_estop)")
        start = self.envelope.clamp_target(self.config.start_xy if start_xy is None else start_xy)
        self._joints = self.ik.solve(start, seed=np.array(self.config.ik.rest_joints))
        self.limits.reset(self._joints, t)   # the arm stands there: the limits start from it
        self._ee_target = start
        self._interpolator.reset(start, t)
        self._last_t, self._lagging = t, False
        self._returning_until = -np.inf
        return self._joints.copy()

    def start_at(self, q: np.ndarray, t: float, max_offset: float) -> None:
        """The arm stands at the measured ``q`` (an arm that someone else's controller holds): the
        joint command starts exactly there (the limits too) and the Cartesian target at its tip,
        clamped into the workspace; setpoints move it from there. Refused (StartRefused, nothing
        changed) when q itself breaks the arm's limits or when the first target's IK solution,
        from q, lies more than ``max_offset`` rad (any joint) from q - the arm stands off the
        working plane, outside the workspace or with the tool tilted, and the controller would
        swing it there at full speed. Raises EStopLatched while latched."""
        if self.estopped:
            raise EStopLatched("e-stop latched: release it first (controller/release_estop)")
        q = np.asarray(q, dtype=np.float64)
        reason = self.limits.pose_violation(q)
        if reason is not None:
            raise StartRefused(f"the measured pose breaks the arm's limits: {reason}")
        tip = self.ik.forward(q)
        target = self.envelope.clamp_target(tip)
        try:
            offset = float(np.max(np.abs(self.ik.solve(target, seed=q) - q)))
        except IKError as exc:
            raise StartRefused(f"no IK solution near the measured pose: {exc}") from exc
        if offset > max_offset:
            raise StartRefused(
                f"the tip stands at {np.round(tip, 3).tolist()} m, {np.linalg.norm(tip - target) * 1000:.0f} mm "
                f"from the nearest working target {np.round(target, 3).tolist()} (a joint {offset:.3f} rad away, "
                f"limit {max_offset} rad): move the arm to the working height inside the workspace, tool down")
        self._joints = q.copy()
        self.limits.reset(q, t)
        self._ee_target = target
        self._interpolator.reset(target, t)
        self._last_t, self._lagging = t, False
        self._returning_until = -np.inf

    def return_to_start(self, t: float, speed: float) -> float:
        """Drive the commanded target from where it is at ``t`` back to config.start_xy in a
        straight line at ``speed`` m/s (every limit still applies every cycle) and ignore
        setpoints until it arrives; returns the arrival time. Raises EStopLatched while latched."""
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        if self.estopped:
            raise EStopLatched("e-stop latched: release it first (controller/release_estop)")
        start = self.envelope.clamp_target(self.config.start_xy)
        self._interpolator.reset(self._ee_target, t)   # from the target commanded now
        distance = float(np.linalg.norm(start - self._ee_target))
        duration = max(self.config.setpoint_period_s, distance / speed)
        self._interpolator.set_goal(start, t, duration)
        self._lagging = False
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
        if self._lagging:   # the tip speed limit held the target back: start from where it is
            self._interpolator.reset(self._ee_target, t)
            self._lagging = False
        self._interpolator.set_goal(goal, t)
        return goal

    def step(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Joint command q[6] and interpolated Cartesian target xyz for time ``t``.
        Holds the last setpoint when setpoints stop."""
        # The workspace ring is not convex: a straight segment between two clamped setpoints
        # can cut inside its inner radius (measured 29 mm), so every cycle's target is clamped.
        target = self._speed_limited(self.envelope.clamp_target(self._interpolator.position(t)), t)
        self._last_t = t
        try:
            solution = self.ik.solve(target)
        except IKError as exc:
            # Unreachable despite the envelope: hold the arm where it is commanded now.
            self.ik_failures += 1
            log.warning("holding position: %s", exc)
            return self._joints.copy(), self._ee_target.copy()
        self._joints = self.limits.limit(self.envelope.limit_joint_step(self._joints, solution), t)
        self._ee_target = target
        return self._joints.copy(), target.copy()

    def _speed_limited(self, target: np.ndarray, t: float) -> np.ndarray:
        """Move the Cartesian target from the last one by at most max_tip_speed per unit of time
        (a burst of setpoints cannot beat it). The ring is not convex: the limited point is
        clamped again and the fraction of the way shrunk until both hold."""
        if self._last_t is None:
            return target
        dt = min(t - self._last_t, self.limits.config.max_step_interval)
        if not dt > 0:
            return self._ee_target.copy()
        reach = self.limits.config.max_tip_speed * dt
        offset = target - self._ee_target
        distance = float(np.linalg.norm(offset))
        self._lagging = distance > reach
        if not self._lagging:
            return target
        low, high = 0.0, reach / distance
        candidate = self.envelope.clamp_target(self._ee_target + high * offset)
        if np.linalg.norm(candidate - self._ee_target) <= reach:
            return candidate
        for _ in range(40):
            middle = 0.5 * (low + high)
            if np.linalg.norm(self.envelope.clamp_target(self._ee_target + middle * offset) - self._ee_target) <= reach:
                low = middle
            else:
                high = middle
        return self.envelope.clamp_target(self._ee_target + low * offset)

    def estop(self, t: float) -> None:
        """Latch the e-stop: stop at the currently commanded target and ignore setpoints (and
        refuse reset / return_to_start) until release_estop()."""
        self._interpolator.reset(self._ee_target, t)
        self._lagging = False
        self.estopped = True
        self._returning_until = -np.inf

    def release_estop(self, t: float) -> None:
        """The operator's explicit release: the target stays where it is held; setpoints (and
        resets) are accepted again."""
        self._interpolator.reset(self._ee_target, t)
        self.estopped = False


def _check_workspace_inside(config: ControllerConfig, limits: ArmLimits) -> None:
    """The controller's workspace must lie inside the arm limits' tip box, or the driver would
    refuse the controller's own targets."""
    ws, box = config.workspace, limits.config.tip_box
    for name, inner, outer in (("x", ws.x, box.x), ("y", ws.y, box.y), ("height", (ws.height, ws.height), box.z)):
        if inner[0] < outer[0] or inner[1] > outer[1]:
            raise ValueError(f"workspace.{name} {list(inner)} is not inside the arm limits' tip_box "
                             f"{list(outer)} ({config.limits_file})")
