"""The controller's joint targets streamed to a ros2_control controller (xarm_ros2's cell), free
of ROS: which topic, which joint names in which order, and - since no driver of ours stands
between the controller and the arm then - every guarantee the xArm driver gives on its own
stream, kept here:

    stream = Ros2ControlStream(controller, ArmOutputConfig(output="joint_trajectory"))
    stream.on_joint_state(names, positions, t)      # every /joint_states message, t = arrival
    joints, ee_target = stream.step(t)              # every control cycle; joints None = send nothing

Rules (each stop is logged by the node and reported on /diagnostics with ``stream.reason``):
  * Streaming starts from the measured pose: the first target sent is the measured joint
    positions themselves, and the Cartesian target starts at the measured tip in the workspace
    (CartesianController.start_at, which refuses a pose off the working plane). A forward
    position controller applies a target at once and a JointTrajectoryController reaches it
    within one cycle, so a first target anywhere else would be a jump.
  * No fresh joint_states (none yet, or none received for ``joint_states_timeout``): nothing is
    sent. The arm's controller holds the last target (both kinds do).
  * E-stop latched: nothing is sent, so the arm's controller holds and another tool (MoveIt,
    xArm Studio) may move the arm without this stream fighting it.
  * The arm does not follow (measured pose more than ``max_tracking_error`` from the last target
    sent): nothing more is sent this cycle, and the stream restarts from the measured pose - the
    targets never run further ahead of the arm than that.
  * Every target passes the arm's hard limits (config/arm_limits.yaml, the check the driver and
    the sim's arm apply) and the controller's per-cycle joint step, checked again here against
    the last target sent; a refused one is not sent and the stream restarts from the measured pose.
  After any stop, streaming resumes - from the measured pose, never from where it stopped - at
  the first cycle with fresh joint_states, the e-stop released and the start pose accepted.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from cell.control.arm_limits import ArmLimits
from cell.control.cartesian_controller import CartesianController, StartRefused
from cell.hardware.joints import joint_names, positions_by_name

# output -> (the command topic under the controller's name, xarm_ros2's controller name)
ROS2_CONTROL_OUTPUTS = {
    "joint_trajectory": ("joint_trajectory", "xarm6_traj_controller"),     # JointTrajectoryController
    "forward_position": ("commands", "forward_position_controller"),      # position_controllers/JointGroupPositionController
}
OUTPUTS = ("joint_command", *ROS2_CONTROL_OUTPUTS)   # joint_command: our xarm_driver_node (or the sim)
STEP_TOLERANCE = 1e-9   # rad: float noise of the controller's own step scaling


@dataclass
class ArmOutputConfig:
    """Where the controller's joint targets go (the controller node's parameters)."""
    output: str = "joint_command"        # joint_command | joint_trajectory | forward_position
    controller: str = ""                 # ros2_control controller name ("" = xarm_ros2's for the output, behind joint_prefix)
    joint_prefix: str = ""               # xarm_ros2's `prefix` (joint names and controller names)
    joint_states_topic: str = "joint_states"   # the measured joints (the joint_state_broadcaster's /joint_states)
    joint_states_timeout: float = 0.1    # s without a joint_states message before streaming stops
    # rad (any joint) the measured pose may lag the last target sent: at full joint speed (3 rad/s)
    # an arm whose joint_states arrive joint_states_timeout late lags 0.3 rad (pushing: < 0.8 rad/s)
    max_tracking_error: float = 0.3
    max_start_offset: float = 0.05       # rad (any joint) between the measured pose and the controller's first target

    def validate(self) -> None:
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {list(OUTPUTS)}, got {self.output!r}")
        if self.controller and self.output == "joint_command":
            raise ValueError(f"controller {self.controller!r} names a ros2_control controller, but output is "
                             "joint_command (our xarm_driver_node); set output to joint_trajectory or forward_position")
        if not self.joint_states_topic:
            raise ValueError("joint_states_topic must name a topic")
        for name in ("joint_states_timeout", "max_tracking_error", "max_start_offset"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def ros2_control(self) -> bool:
        return self.output in ROS2_CONTROL_OUTPUTS

    @property
    def controller_name(self) -> str:
        return self.controller or self.joint_prefix + ROS2_CONTROL_OUTPUTS[self.output][1]

    @property
    def command_topic(self) -> str:
        """Relative, as the controller's own `~/joint_trajectory` / `~/commands` resolves in the
        root namespace: /xarm6_traj_controller/joint_trajectory."""
        return f"{self.controller_name}/{ROS2_CONTROL_OUTPUTS[self.output][0]}"

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Names and order of every command: the controller's `joints` in xarm_ros2 (joint1..joint6)."""
        return joint_names(self.joint_prefix)


def duration_parts(seconds: float) -> tuple[int, int]:
    """(sec, nanosec) of a builtin_interfaces/Duration."""
    nanoseconds = round(seconds * 1e9)
    return nanoseconds // 1_000_000_000, nanoseconds % 1_000_000_000


class StreamState(str, Enum):
    NO_JOINT_STATES = "no_joint_states"   # none yet, or stale
    START_REFUSED = "start_refused"       # the measured pose is no place to start from
    STREAMING = "streaming"
    ESTOPPED = "estopped"
    RESYNC = "resync"                     # stopped this cycle (the arm did not follow / a target refused); restarts next


class Ros2ControlStream:
    def __init__(self, controller: CartesianController, config: ArmOutputConfig) -> None:
        config.validate()
        self.controller = controller
        self.config = config
        # The driver's check, kept on its own state: what was actually sent, not what the controller computed.
        self.limits = ArmLimits(controller.limits.config, kinematics=controller.ik)
        self.state = StreamState.NO_JOINT_STATES
        self.reason = "no joint_states received yet: not streaming"
        self._measured: np.ndarray | None = None
        self._measured_t: float | None = None
        self._last_sent: np.ndarray | None = None
        self.sent = 0
        self.refused_limits = 0
        self.resyncs = 0            # restarts after the arm did not follow or a target was refused
        self.last_refusal = ""

    @property
    def streaming(self) -> bool:
        return self.state == StreamState.STREAMING

    def on_joint_state(self, names, positions, t: float) -> None:
        """A joint_states message arrived at t (the node's clock); ValueError if it lacks the arm's joints."""
        self._measured = positions_by_name(names, positions, self.config.joint_names)
        self._measured_t = t

    def joint_states_age(self, t: float) -> float | None:
        return None if self._measured_t is None else t - self._measured_t

    def step(self, t: float) -> tuple[np.ndarray | None, np.ndarray | None]:
        """This cycle's (joint target to send or None, Cartesian target or None). The controller
        steps only while streaming."""
        reason = self._hold_reason(t)
        if reason is not None:
            self._stop(StreamState.ESTOPPED if self.controller.estopped else StreamState.NO_JOINT_STATES, reason)
            return None, None
        if not self.streaming:
            return self._start(t)
        error = float(np.max(np.abs(self._measured - self._last_sent)))
        if error > self.config.max_tracking_error:
            self.resyncs += 1
            self._stop(StreamState.RESYNC, f"the arm does not follow: measured {error:.3f} rad from the last "
                                           f"target (max_tracking_error {self.config.max_tracking_error} rad); "
                                           "restarting from the measured pose")
            return None, None
        joints, target = self.controller.step(t)
        refusal = self._refusal(joints, t)
        if refusal is not None:
            self.refused_limits += 1
            self.resyncs += 1
            self.last_refusal = refusal
            self._stop(StreamState.RESYNC, f"joint target refused, not sent: {refusal}; restarting from the measured pose")
            return None, None
        self._send(joints)
        return joints, target

    def _hold_reason(self, t: float) -> str | None:
        if self.controller.estopped:
            return ("e-stop latched: not streaming (the arm's controller holds the last target); "
                    "streaming restarts from the measured pose after controller/release_estop")
        age = self.joint_states_age(t)
        if age is None:
            return "no joint_states received yet: not streaming"
        if age > self.config.joint_states_timeout:
            return (f"joint_states stale: none for {age:.2f} s (joint_states_timeout "
                    f"{self.config.joint_states_timeout} s): not streaming")
        return None

    def _start(self, t: float) -> tuple[np.ndarray | None, np.ndarray | None]:
        measured = self._measured.copy()
        try:
            self.controller.start_at(measured, t, self.config.max_start_offset)
        except StartRefused as exc:
            self._stop(StreamState.START_REFUSED, f"not starting from the measured pose: {exc}")
            return None, None
        self.limits.reset(measured, t)
        self.state, self.reason = StreamState.STREAMING, "streaming from the measured pose"
        self._send(measured)
        return measured, self.controller.ee_target

    def _refusal(self, joints: np.ndarray, t: float) -> str | None:
        step = np.abs(joints - self._last_sent)
        j = int(np.argmax(step))
        if step[j] > self.controller.config.max_joint_step + STEP_TOLERANCE:
            return (f"joint{j + 1} would step {step[j]:.4f} rad in one cycle "
                    f"(max_joint_step {self.controller.config.max_joint_step} rad)")
        return self.limits.submit(joints, t)

    def _send(self, joints: np.ndarray) -> None:
        self._last_sent = joints.copy()
        self.sent += 1

    def _stop(self, state: StreamState, reason: str) -> None:
        self.state, self.reason = state, reason
