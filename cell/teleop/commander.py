"""Mouse teleoperation logic, ROS-free: pointer target -> 5 Hz delta setpoints, keys -> recorder
actions. The teleop node is a thin wrapper around this.

The operator points at where the pusher should go; every policy period the commander sends the
step from the last commanded setpoint towards that point, clamped exactly like the policy's
actions (SafetyEnvelope.clamp_delta: +-max_setpoint_step per axis) and kept inside the
workspace box (SafetyEnvelope.clamp_target), so demonstrations only contain actions the
policy could produce. While the pointer is released no setpoints are sent (the controller
holds) and the commanded position follows the controller's commanded setpoint, so the first step of
the next engagement starts from where the arm really is commanded.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from cell.control.envelope import SafetyEnvelope
from cell.teleop.mapping import TableMappingConfig
from cell.timing import load_timing, timing_default

RecorderAction = Literal["start", "stop", "discard", "success"]
RECORDER_ACTIONS: tuple[RecorderAction, ...] = ("start", "stop", "discard", "success")


@dataclass
class KeyBindings:
    start: str = "r"       # record a new episode
    stop: str = "s"        # stop and keep it
    discard: str = "d"     # stop and throw it away (re-record)
    success: str = "g"     # goal reached: mark the running episode successful
    calibrate: str = "c"   # hardware: click the workspace corners again
    quit: str = "q"

    def validate(self) -> None:
        keys = [self.start, self.stop, self.discard, self.success, self.calibrate, self.quit]
        if any(len(k) != 1 for k in keys) or len(set(keys)) != len(keys):
            raise ValueError(f"key bindings must be distinct single characters, got {keys}")

    def action_for(self, key: str) -> str | None:
        """Action for a key press or for an action name sent on the key topic."""
        if key in RECORDER_ACTIONS or key in ("calibrate", "quit"):
            return key
        for action in (*RECORDER_ACTIONS, "calibrate", "quit"):
            if key == getattr(self, action):
                return action
        return None


@dataclass
class TeleopConfig(TableMappingConfig):
    # Setpoint rate: the policy's, from config/timing.yaml; a parameter override must agree.
    rate_hz: float = timing_default("control_hz")
    pointer_timeout_s: float = 1.0           # pointer topic silent this long = released
    # The operator's seat is the web console (console_node); the OpenCV window is an option
    # where an OpenCV build with GUI support is installed (the pinned headless one has none).
    display: Literal["none", "window"] = "none"
    keys: KeyBindings = field(default_factory=KeyBindings)

    def validate(self) -> None:
        load_timing().check("rate_hz", self.rate_hz, "control_hz")
        if self.pointer_timeout_s <= 0:
            raise ValueError(f"pointer_timeout_s must be positive, got {self.pointer_timeout_s}")


class TeleopCommander:
    def __init__(self, envelope: SafetyEnvelope, start_xy: tuple[float, float], pointer_timeout_s: float):
        self.envelope = envelope
        self.pointer_timeout_s = pointer_timeout_s
        self.commanded = np.asarray(start_xy, dtype=np.float64)
        self.target: np.ndarray | None = None
        self._last_pointer_time = -np.inf

    @property
    def engaged(self) -> bool:
        return self.target is not None

    def point(self, xy: np.ndarray, now_s: float) -> None:
        """Operator points at table position ``xy`` (metres); clamped into the workspace."""
        xy = np.asarray(xy, dtype=np.float64)
        if xy.shape != (2,) or not np.all(np.isfinite(xy)):
            raise ValueError(f"pointer must be 2 finite numbers, got {xy!r}")
        self.target = self.envelope.clamp_target(xy)[:2]
        self._last_pointer_time = now_s

    def release(self) -> None:
        self.target = None

    def follow(self, xy: np.ndarray) -> None:
        """The controller's current setpoint; adopted while released."""
        if not self.engaged:
            self.commanded = np.asarray(xy, dtype=np.float64)[:2].copy()

    def tick(self, now_s: float) -> np.ndarray | None:
        """The delta setpoint for this period, or None while released."""
        if self.engaged and now_s - self._last_pointer_time > self.pointer_timeout_s:
            self.release()
        if self.target is None:
            return None
        delta = self.envelope.clamp_delta(self.target - self.commanded)
        self.commanded = self.commanded + delta
        return delta
