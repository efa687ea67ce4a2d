"""xArm6 driver logic over the official SDK (xarm.wrapper.XArmAPI), free of ROS.

    driver = XArmDriver(XArmDriverConfig(robot_ip="192.168.1.185"))
    driver.connect()                       # safety settings, enable, position mode
    driver.submit(q, age_s)                # newest joint target from the controller
    driver.joint_positions(), driver.status()
    driver.recover()                       # after an error: clean -> enable -> approach -> servo
    driver.close()

Sequence (xArm developer manual, ANCHORS.md): motion_enable(True) -> set_mode(0) -> set_state(0);
move to the start pose in position mode (a first servo target far from the current pose shakes
the arm); then set_mode(1) -> set_state(0) and stream set_servo_angle_j. The start pose is either
configured or, by default, the controller's first joint command (it holds its start target).

set_servo_angle_j is a blocking TCP request that occasionally stalls (~190 ms reports), so it runs
in the driver's own streaming thread: submit() only stores the newest target and returns. The
thread sends each target at most once and never one that is older than `command_timeout` when it
would go out (a stalled call therefore never releases a backlog of old targets). A status thread
polls error/warning codes: on an error the driver stops streaming until recover(), after which
the next command is approached in position mode like the start pose.
dry_run connects and reads the arm but sends no motion command and changes no setting; every
command it would have sent is still handed to `on_command` (the node publishes it).

The driver is the last line of defence: every target - the start pose it would approach in
position mode as well as every servo target - goes through the arm's hard limits
(cell.control.arm_limits, config/arm_limits.yaml: joint limits, the tip's box above the table by
forward kinematics of the same URDF, joint velocity / acceleration and tip speed per unit of time,
timed by the commands' stamps). A refused target is not sent: the arm holds the last one; the
refusal is counted, reported on /diagnostics by the node and logged at most once per
`log_throttle` seconds with the number of refusals since.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Sequence

import numpy as np

from cell.control.arm_limits import ArmLimits, load_arm_limits

LOG = logging.getLogger("xarm_driver")
JOINT_COUNT = 6


class Phase(str, Enum):
    DISCONNECTED = "disconnected"
    WAITING_FOR_START = "waiting_for_start"  # connected, waiting for the first command to move to
    MOVING_TO_START = "moving_to_start"
    STREAMING = "streaming"
    DRY_RUN = "dry_run"
    FAULT = "fault"


@dataclass
class XArmDriverConfig:
    robot_ip: str = "192.168.1.185"
    command_port: int = 502            # the SDK's TCP command port (reports use its fixed ports)
    dry_run: bool = False
    start_joints: tuple[float, ...] = ()  # rad; empty: the controller's first joint command
    start_speed: float = 0.35          # rad/s for the position-mode move to the start pose
    command_timeout: float = 0.05      # s; a target older than this (or stamped further ahead) is never sent
    limits_file: str = "arm_limits.yaml"  # the arm's hard limits (a bare name: the share dir's config/)
    log_throttle: float = 1.0          # s between two log lines about refused targets
    status_period: float = 0.1         # s between error/warning polls
    collision_sensitivity: int = 3     # 0 (off) .. 5
    reduced_mode: bool = True
    reduced_max_tcp_speed: float = 250.0  # mm/s while in reduced mode
    # TCP boundary box in mm: x_max, x_min, y_max, y_min, z_max, z_min (base frame)
    tcp_boundary: tuple[int, ...] = (750, 100, 400, -400, 400, 0)

    def validate(self) -> None:
        if self.start_joints and len(self.start_joints) != JOINT_COUNT:
            raise ValueError(f"start_joints needs {JOINT_COUNT} values or none, got {len(self.start_joints)}")
        if len(self.tcp_boundary) != 6:
            raise ValueError(f"tcp_boundary needs 6 values, got {len(self.tcp_boundary)}")
        if not 0 <= self.collision_sensitivity <= 5:
            raise ValueError(f"collision_sensitivity must be 0..5, got {self.collision_sensitivity}")
        for name in ("start_speed", "command_timeout", "log_throttle", "status_period", "reduced_max_tcp_speed"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass
class DriverStatus:
    phase: Phase
    error_code: int = 0
    warn_code: int = 0
    message: str = ""
    state: int = -1
    mode: int = -1
    sent: int = 0               # servo targets sent (or, in dry run, that would have been sent)
    refused_stale: int = 0      # targets older than command_timeout (or stamped ahead) when received or due
    refused_limits: int = 0     # targets the arm's limits refused (position, box, speed, acceleration)
    last_refusal: str = ""      # why the last one was refused
    max_call_s: float = 0.0     # slowest set_servo_angle_j round trip


class DriverError(RuntimeError):
    """The arm could not be connected, enabled or recovered; the message says why."""


def describe_error(code: int) -> str:
    from xarm.core.config.x_code import ControllerError
    return f"C{code}: {ControllerError(code).title['en']}" if code else ""


def describe_warning(code: int) -> str:
    from xarm.core.config.x_code import ControllerWarn
    return f"W{code}: {ControllerWarn(code).title['en']}" if code else ""


@dataclass
class _Target:
    joints: np.ndarray
    received: float  # time.monotonic() minus its age at arrival
    t: float         # the time it is commanded for (its stamp): what the limits are timed by


class ThrottledLog:
    """At most one log line per ``period`` seconds; the next one says how many were held back
    (issue 27: one refusal error was logged 93 times in a second)."""

    def __init__(self, logger: logging.Logger, period: float) -> None:
        self._logger, self.period = logger, period
        self._next, self._held_back = -np.inf, 0
        self._lock = threading.Lock()

    def __call__(self, level: int, message: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                self._held_back += 1
                return False
            held, self._held_back, self._next = self._held_back, 0, now + self.period
        if held:
            message += f" [{held} more in the last {self.period:g} s]"
        self._logger.log(level, message)
        return True


class XArmDriver:
    def __init__(self, config: XArmDriverConfig,
                 on_command: Callable[[np.ndarray], None] | None = None,
                 on_fault: Callable[[DriverStatus], None] | None = None) -> None:
        self.config = config
        self._on_command = on_command or (lambda q: None)
        self._on_fault = on_fault or (lambda s: None)
        self.limits = ArmLimits(load_arm_limits(config.limits_file))
        self._limits_lock = threading.Lock()   # the stream thread and connect/recover share it
        self._refusal_log = ThrottledLog(LOG, config.log_throttle)
        self._arm = None
        self._status = DriverStatus(Phase.DISCONNECTED)
        self._lock = threading.Lock()
        self._new_target = threading.Condition(self._lock)
        self._target: _Target | None = None
        self._stop = threading.Event()
        # Set by the SDK's first joint report: until then arm.angles holds the SDK's zeros, which
        # are no pose (a dry run once took them as its jump reference and refused every target).
        self._pose_reported = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle
    def connect(self) -> None:
        from xarm.core.config.x_config import XCONF
        from xarm.wrapper import XArmAPI

        # The SDK reads its command port from XCONF at connect time; report ports are fixed.
        XCONF.SocketConf.TCP_CONTROL_PORT = self.config.command_port
        try:
            # report 'real': joint angles, state and mode at 100 Hz; errors come from polling.
            # forbid_uds: never talk to a local controller socket file instead of robot_ip.
            arm = XArmAPI(self.config.robot_ip, is_radian=True, report_type="real", forbid_uds=True)
        except Exception as exc:  # the SDK raises bare Exception on connection failure
            raise DriverError(f"cannot connect to the xArm at {self.config.robot_ip}:"
                              f"{self.config.command_port}: {exc}") from exc
        if not arm.connected:
            raise DriverError(f"cannot connect to the xArm at {self.config.robot_ip}")
        arm.register_report_location_callback(lambda _report: self._pose_reported.set(),
                                               report_cartesian=False, report_joints=True)
        self._arm = arm
        if self.config.dry_run:
            self._set_phase(Phase.DRY_RUN, "dry run: connected, sending no motion")
        else:
            self._configure_safety()
            self._enable(mode=0)
            self._set_phase(Phase.WAITING_FOR_START, "enabled, waiting for the start pose")
            if self.config.start_joints:
                self._approach(np.asarray(self.config.start_joints, dtype=float))
        self._poll_status()
        self._spawn(self._stream_loop)
        self._spawn(self._status_loop)

    def close(self) -> None:
        self._stop.set()
        with self._new_target:
            self._new_target.notify_all()
        for thread in self._threads:
            thread.join(timeout=2.0)
        if self._arm is not None:
            self._arm.disconnect()
            self._arm = None
        with self._limits_lock:
            self.limits.close()
        self._set_phase(Phase.DISCONNECTED, "closed")

    # ------------------------------------------------------------------ public API
    def submit(self, joints: Sequence[float], age_s: float, stamp_s: float | None = None) -> bool:
        """Hand over the newest joint target, ``age_s`` old, commanded for time ``stamp_s`` (its
        header stamp, s; default: its arrival time less its age, on the monotonic clock). False
        (and counted) when it is already stale or stamped more than command_timeout ahead."""
        q = np.asarray(joints, dtype=float)
        if q.shape != (JOINT_COUNT,) or not np.all(np.isfinite(q)):
            raise ValueError(f"a joint command needs {JOINT_COUNT} finite values, got {list(joints)}")
        with self._new_target:
            if abs(age_s) > self.config.command_timeout:
                self._status.refused_stale += 1
                return False
            received = time.monotonic() - max(age_s, 0.0)
            self._target = _Target(q, received, received if stamp_s is None else float(stamp_s))
            self._new_target.notify()
        return True

    def joint_positions(self) -> np.ndarray | None:
        """The last reported joint angles (rad); None when disconnected or before the first report."""
        arm = self._arm
        if arm is None or not arm.connected or not self._pose_reported.is_set():
            return None
        return np.asarray(arm.angles[:JOINT_COUNT], dtype=float)

    def status(self) -> DriverStatus:
        with self._lock:
            return DriverStatus(**vars(self._status))

    def recover(self) -> DriverStatus:
        """clean_error -> clean_warn -> motion_enable -> position mode. The arm stopped wherever the
        error caught it, so, as at start-up, the next joint command is approached in position
        mode before servo streaming resumes (a servo jump to it would shake the arm)."""
        if self._arm is None:
            raise DriverError("not connected")
        if self.config.dry_run:  # changes nothing on the arm; resumes logging once it is clear
            self._poll_status()
            if not self.status().error_code:
                self._set_phase(Phase.DRY_RUN, "dry run: resumed")
            return self.status()
        self._arm.clean_error()
        self._arm.clean_warn()
        self._enable(mode=0)
        self._poll_status()
        status = self.status()
        if status.error_code:
            raise DriverError(f"the arm still reports {describe_error(status.error_code)}")
        with self._lock:
            self._target = None  # anything queued before the fault is stale by now
        self._set_phase(Phase.WAITING_FOR_START, "recovered; the next command is approached in position mode")
        return self.status()

    # ------------------------------------------------------------------ internals
    def _spawn(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _set_phase(self, phase: Phase, message: str) -> None:
        with self._lock:
            self._status.phase, self._status.message = phase, message
        LOG.info("%s: %s", phase.value, message)

    def _check(self, code: int, what: str) -> None:
        if code != 0:
            raise DriverError(f"{what} failed with SDK code {code} "
                              f"({describe_error(self._arm.error_code) or 'no controller error'})")

    def _configure_safety(self) -> None:
        arm, c = self._arm, self.config
        self._check(arm.set_collision_sensitivity(c.collision_sensitivity, wait=False), "set_collision_sensitivity")
        self._check(arm.set_reduced_max_tcp_speed(c.reduced_max_tcp_speed), "set_reduced_max_tcp_speed")
        self._check(arm.set_reduced_tcp_boundary(list(c.tcp_boundary)), "set_reduced_tcp_boundary")
        self._check(arm.set_reduced_mode(c.reduced_mode), "set_reduced_mode")

    def _enable(self, mode: int) -> None:
        self._check(self._arm.motion_enable(True), "motion_enable")
        self._check(self._arm.set_mode(mode), f"set_mode({mode})")
        self._check(self._arm.set_state(0), "set_state(0)")
        deadline = time.monotonic() + 1.0  # the mode change shows in the next reports
        while self._arm.mode != mode and time.monotonic() < deadline:
            time.sleep(0.01)
        if self._arm.mode != mode:
            raise DriverError(f"the arm did not switch to mode {mode} (reports mode {self._arm.mode})")

    def _refuse(self, reason: str) -> None:
        """Count and (throttled) log a refused target; nothing is sent, the arm holds."""
        with self._lock:
            self._status.refused_limits += 1
            self._status.last_refusal = reason
        self._refusal_log(logging.ERROR, f"refusing a joint target, holding the last one: {reason}")

    def _approach(self, start: np.ndarray) -> None:
        """The position-mode move to a start pose - only one the arm's limits allow."""
        with self._limits_lock:
            reason = self.limits.pose_violation(start)
        if reason is not None:
            self._refuse(f"start pose {np.round(start, 3).tolist()} not approached: {reason}")
            return
        self._move_to_start(start)

    def _move_to_start(self, start: np.ndarray) -> None:
        self._set_phase(Phase.MOVING_TO_START, f"moving to the start pose {np.round(start, 3).tolist()}")
        code = self._arm.set_servo_angle(angle=start.tolist(), speed=self.config.start_speed, wait=True)
        self._check(code, "move to the start pose")
        self._enable(mode=1)
        with self._limits_lock:
            self.limits.reset(self.joint_positions())   # servo targets are checked from the measured pose
        self._set_phase(Phase.STREAMING, "at the start pose, streaming servo targets")

    def _next_target(self) -> _Target | None:
        with self._new_target:
            while self._target is None and not self._stop.is_set():
                self._new_target.wait(timeout=0.1)
            target, self._target = self._target, None
            return target

    def _stream_loop(self) -> None:
        while not self._stop.is_set():
            target = self._next_target()
            if target is None:
                continue
            try:
                self._handle_target(target)
            except DriverError as exc:
                self._enter_fault(str(exc))

    def _handle_target(self, target: _Target) -> None:
        phase = self.status().phase
        if phase == Phase.WAITING_FOR_START:
            self._approach(target.joints)
            return
        if phase not in (Phase.STREAMING, Phase.DRY_RUN):
            return  # fault / moving: drop, a newer target will follow
        if time.monotonic() - target.received > self.config.command_timeout:
            with self._lock:
                self._status.refused_stale += 1
            return
        with self._limits_lock:
            if self.limits.last is None:   # dry run: the measured pose is the reference
                self.limits.reset(self.joint_positions())
            reason = self.limits.violation(target.joints, target.t)
        if reason is not None:
            self._refuse(reason)
            return
        if phase == Phase.STREAMING:
            started = time.monotonic()
            code = self._arm.set_servo_angle_j(target.joints.tolist(), is_radian=True)
            elapsed = time.monotonic() - started
            with self._lock:
                self._status.max_call_s = max(self._status.max_call_s, elapsed)
            if code != 0:
                self._poll_status()
                if self._arm.error_code:
                    return  # the status check below has entered the fault
                LOG.warning("set_servo_angle_j returned SDK code %d", code)
                return
        with self._limits_lock:
            self.limits.accept(target.joints, target.t)
        with self._lock:
            self._status.sent += 1
        self._on_command(target.joints)

    def _status_loop(self) -> None:
        while not self._stop.wait(self.config.status_period):
            self._poll_status()

    def _poll_status(self) -> None:
        arm = self._arm
        if arm is None:
            return
        if not arm.connected:
            self._enter_fault("connection to the arm lost")
            return
        code, (error_code, warn_code) = arm.get_err_warn_code()
        if code != 0:
            return  # transient read failure; the next poll retries
        with self._lock:
            status = self._status
            status.error_code, status.warn_code = error_code, warn_code
            status.state, status.mode = arm.state, arm.mode
        if error_code and status.phase != Phase.FAULT:
            self._enter_fault(describe_error(error_code))

    def _enter_fault(self, message: str) -> None:
        with self._lock:
            already = self._status.phase == Phase.FAULT
            self._status.phase, self._status.message = Phase.FAULT, message
            self._target = None
        if not already:
            LOG.error("fault: %s", message)
            self._on_fault(self.status())
