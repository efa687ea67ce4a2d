"""The arm's hard motion limits: the ONE check every component that moves the arm applies.

    limits = ArmLimits(load_arm_limits())
    limits.reset(q_now)                    # the arm stands (was placed / measured) at q_now
    reason = limits.submit(q, t)           # None: accepted (and remembered); else why refused
    q = limits.limit(q_wanted, t)          # the controller: the largest step along the chord
                                           # towards q_wanted that submit() would accept

Checked for every joint target q commanded for time t (seconds, the command's stamp):
  * joint positions inside the URDF's joint limits (less ``joint_margin``);
  * the pusher tip, by forward kinematics of the same URDF the controller's IK and the sim use,
    inside ``tip_box`` - a box above the table plane (z = 0): never into the table;
  * per unit of time, against the last accepted target: joint velocity <= max_joint_velocity,
    joint acceleration <= max_joint_acceleration, tip speed <= max_tip_speed. A step is timed
    over at most ``max_step_interval``: a servo arm reaches each target within about a cycle,
    however long ago the previous one was sent, so a long gap never licenses a big jump;
  * targets not newer than the last accepted one are refused (a replayed or reordered stream).

Used by the xArm driver (refuse + hold, the last line of defence), by the sim's arm
(sim.block_push.PushWorld, so the sim refuses what the real arm's driver refuses) and by the
Cartesian controller (which limits its own output with ``limit`` so that normal motion is never
refused). ROS-free; no clocks: callers pass times.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ibc_core.config_io import load_config
from cell.control.config import IKConfig, require_ranges
from cell.control.ik import XArmIK
from cell.paths import share_file

# Times are float seconds since the epoch (ROS stamps): 1.7e9 s resolve only ~0.24 us, so the same
# stamp read as nanoseconds * 1e-9 or as sec + nanosec * 1e-9 can differ by that. A check allows
# each step this much more time than limit() uses (0.01 % of a 10 ms cycle).
TIME_TOLERANCE = 1e-6


@dataclass
class TipBoxConfig:
    """Where the pusher tip may be (m, arm base frame). z is height above the table plane."""
    x: tuple[float, float] = (0.14, 0.71)
    y: tuple[float, float] = (-0.51, 0.51)
    z: tuple[float, float] = (0.005, 0.30)

    def validate(self) -> None:
        require_ranges("tip_box", x=self.x, y=self.y, z=self.z)
        if self.z[0] < 0:
            raise ValueError(f"tip_box.z must start at or above the table plane (z >= 0), got {list(self.z)}")


@dataclass
class ArmLimitsConfig:
    urdf: str = "xarm6_pusher.urdf"          # in the share dir's urdf/ (the controller's and the sim's)
    tip_link: str = "pusher_tip"
    max_joint_velocity: float = 3.14         # rad/s, every joint (xArm6: 180 deg/s)
    max_joint_acceleration: float = 400.0    # rad/s^2 (normal pushing: < 80; a stop from full speed in one 10 ms cycle: 314)
    max_tip_speed: float = 0.75              # m/s (the policy at full setpoint speed: 0.707)
    max_step_interval: float = 0.032         # s; a step is timed over at most this (0.1 rad at full joint speed)
    joint_margin: float = 0.0                # rad kept inside the URDF joint limits
    tip_box: TipBoxConfig = field(default_factory=TipBoxConfig)

    def validate(self) -> None:
        for name in ("max_joint_velocity", "max_joint_acceleration", "max_tip_speed", "max_step_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.joint_margin < 0:
            raise ValueError(f"joint_margin must be >= 0, got {self.joint_margin}")


def load_arm_limits(source: str | Path | Mapping[str, Any] | None = None,
                    overrides: Sequence[str] = ()) -> ArmLimitsConfig:
    """config/arm_limits.yaml from the share dir, another file (a bare name is looked up in the
    share dir's config/), or a mapping."""
    if source is None:
        source = "arm_limits.yaml"
    if isinstance(source, (str, Path)):
        path = Path(source)
        source = path if path.is_absolute() or path.exists() else share_file("config", str(source))
    return load_config(ArmLimitsConfig, source, overrides)


@dataclass
class _Accepted:
    q: np.ndarray
    t: float | None        # None: placed / measured, time unknown (the first step is timed over max_step_interval)
    tip: np.ndarray
    velocity: np.ndarray   # rad/s of the step that reached q (zero for a placed arm)
    dt: float              # the time that step was timed over


class ArmLimits:
    def __init__(self, config: ArmLimitsConfig | None = None, kinematics: XArmIK | None = None):
        self.config = config or load_arm_limits()
        self._owns_kinematics = kinematics is None
        self.kinematics = kinematics or XArmIK(IKConfig(urdf=self.config.urdf, tip_link=self.config.tip_link))
        self.lower = self.kinematics.lower + self.config.joint_margin
        self.upper = self.kinematics.upper - self.config.joint_margin
        box = self.config.tip_box
        self.box_low = np.array([box.x[0], box.y[0], box.z[0]])
        self.box_high = np.array([box.x[1], box.y[1], box.z[1]])
        self._last: _Accepted | None = None

    def close(self) -> None:
        if self._owns_kinematics:
            self.kinematics.close()

    @property
    def last(self) -> np.ndarray | None:
        """The last accepted (or placed) joint target."""
        return None if self._last is None else self._last.q.copy()

    def tip(self, q: np.ndarray) -> np.ndarray:
        return self.kinematics.forward(np.asarray(q, dtype=np.float64))

    def reset(self, q: np.ndarray | None, t: float | None = None) -> None:
        """The arm stands still at q (placed, or measured after a position-mode move); None
        forgets the reference (nothing is accepted until the next reset)."""
        if q is None:
            self._last = None
            return
        q = np.asarray(q, dtype=np.float64).copy()
        self._last = _Accepted(q, t, self.tip(q), np.zeros(6), self.config.max_step_interval)

    # ------------------------------------------------------------------ checks
    def pose_violation(self, q: np.ndarray) -> str | None:
        """Why the pose q itself is not allowed (joint limits, tip outside the box), or None."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (6,) or not np.all(np.isfinite(q)):
            return f"a joint target needs 6 finite values, got {np.asarray(q).tolist()}"
        outside = np.flatnonzero((q < self.lower) | (q > self.upper))
        if outside.size:
            j = int(outside[0])
            return (f"joint{j + 1} at {q[j]:.3f} rad is outside its limits "
                    f"[{self.lower[j]:.3f}, {self.upper[j]:.3f}]")
        return self._tip_violation(self.tip(q))

    def _tip_violation(self, tip: np.ndarray) -> str | None:
        if np.all(tip >= self.box_low) and np.all(tip <= self.box_high):
            return None
        where = ("below the table plane" if tip[2] < 0 else
                 "below the lowest allowed height" if tip[2] < self.box_low[2] else "outside the workspace box")
        return (f"the tip would be at {np.round(tip, 4).tolist()} m, {where} "
                f"(box x {list(self.config.tip_box.x)}, y {list(self.config.tip_box.y)}, "
                f"z {list(self.config.tip_box.z)})")

    def _interval(self, t: float) -> float | str:
        last = self._last
        if last.t is None:
            return self.config.max_step_interval
        dt = t - last.t
        if not dt > 0:
            return f"stamped {dt * 1000:.1f} ms relative to the last accepted target (not newer)"
        return min(dt, self.config.max_step_interval)

    def violation(self, q: np.ndarray, t: float) -> str | None:
        """Why the joint target q for time t would be refused, or None. Needs a reference
        (reset or an accepted target): without one every target is refused."""
        reason = self.pose_violation(q)
        if reason is not None:
            return reason
        if self._last is None:
            return "no reference pose yet (the arm's pose is unknown)"
        dt = self._interval(t)
        if isinstance(dt, str):
            return dt
        q = np.asarray(q, dtype=np.float64)
        return self._motion_violation(q, self.tip(q), dt, TIME_TOLERANCE)

    def _motion_violation(self, q: np.ndarray, tip: np.ndarray, dt: float, slack_s: float = 0.0) -> str | None:
        c, last = self.config, self._last
        slack = 1.0 + slack_s / dt + 1e-12
        velocity = (q - last.q) / dt
        j = int(np.argmax(np.abs(velocity)))
        if abs(velocity[j]) > c.max_joint_velocity * slack:
            return (f"joint{j + 1} would move {abs(q[j] - last.q[j]):.3f} rad in {dt * 1000:.1f} ms = "
                    f"{abs(velocity[j]):.2f} rad/s (limit {c.max_joint_velocity} rad/s)")
        acceleration = (velocity - last.velocity) / (0.5 * (dt + last.dt))
        j = int(np.argmax(np.abs(acceleration)))
        if abs(acceleration[j]) > c.max_joint_acceleration * slack:
            return (f"joint{j + 1} would accelerate at {abs(acceleration[j]):.0f} rad/s^2 "
                    f"(limit {c.max_joint_acceleration} rad/s^2)")
        speed = float(np.linalg.norm(tip - last.tip)) / dt
        if speed > c.max_tip_speed * slack:
            return (f"the tip would move {np.linalg.norm(tip - last.tip) * 1000:.1f} mm in {dt * 1000:.1f} ms = "
                    f"{speed:.2f} m/s (limit {c.max_tip_speed} m/s)")
        return None

    def accept(self, q: np.ndarray, t: float) -> None:
        """Remember q (already checked) as the last target sent to the arm."""
        q = np.asarray(q, dtype=np.float64).copy()
        if self._last is None:
            self.reset(q, t)
            return
        dt = self._interval(t)
        dt = self.config.max_step_interval if isinstance(dt, str) else dt
        self._last = _Accepted(q, t, self.tip(q), (q - self._last.q) / dt, dt)

    def submit(self, q: np.ndarray, t: float) -> str | None:
        """Check q for time t; accept it (None) or say why it is refused (the reference stays:
        the arm holds the last accepted target)."""
        reason = self.violation(q, t)
        if reason is None:
            self.accept(q, t)
        return reason

    # ------------------------------------------------------------------ the controller's side
    def limit(self, wanted: np.ndarray, t: float) -> np.ndarray:
        """The joint target for time t closest to ``wanted`` on the joint-space chord from the
        last accepted target that ``submit`` accepts: the step scaled by one factor in [0, 1]
        (all joints together, so the tip stays on the chord) to meet the velocity, acceleration
        and tip speed limits. Holds (factor 0) if even that is refused. Accepts the result."""
        wanted = np.asarray(wanted, dtype=np.float64)
        if self._last is None:
            self.reset(wanted, t)
            return wanted.copy()
        dt = self._interval(t)
        if isinstance(dt, str):
            return self._last.q.copy()   # not newer: keep the last target (not re-accepted)
        c, last = self.config, self._last
        step = wanted - last.q
        # Largest factor a with |a*step/dt| <= v_max and |a*step/dt - v_last| <= a_max * mean dt.
        room = c.max_joint_acceleration * 0.5 * (dt + last.dt)
        factor = 1.0
        for j in np.flatnonzero(np.abs(step) > 1e-15):
            per_unit = step[j] / dt
            bound = min(c.max_joint_velocity, last.velocity[j] * np.sign(per_unit) + room)
            factor = min(factor, max(bound, 0.0) / abs(per_unit))
        q = last.q + factor * step
        for _ in range(30):   # the tip speed is nearly linear in the factor: shrink until it holds
            tip = self.tip(q)
            if self._motion_violation(q, tip, dt) is None and self._tip_violation(tip) is None:
                self.accept(q, t)
                return q.copy()
            factor *= 0.9
            q = last.q + factor * step
        # No point on the chord will do: after a much shorter cycle than the last, even stopping
        # can need more than max_joint_acceleration. Then each joint's velocity moves towards the
        # wanted one as far as the acceleration limit allows, or the last velocity is kept.
        wanted_velocity = step / dt
        bounded = np.clip(np.clip(wanted_velocity, last.velocity - room, last.velocity + room),
                          -c.max_joint_velocity, c.max_joint_velocity)
        for velocity in (bounded, last.velocity):
            q = last.q + velocity * dt
            tip = self.tip(q)
            if self._motion_violation(q, tip, dt) is None and self._tip_violation(tip) is None:
                self.accept(q, t)
                return q.copy()
        hold = last.q.copy()
        if self._motion_violation(hold, last.tip, dt) is None:
            self.accept(hold, t)
        return hold
