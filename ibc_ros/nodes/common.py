"""What every ibc_ros node shares: dataclass configs from ROS parameters, message conversions,
and a main() runner. The only module besides the node wrappers that touches rclpy/messages.

Node parameters come from a params file (config/<node>.yaml, `/**: ros__parameters:`) and
`-p name:=value`; each node's parameters are exactly the fields of its config dataclass (nested
dataclasses as dotted names), validated by ibc_core.config_io like every other config.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import typing
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
import rclpy
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import Vector3Stamped
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool

from ibc_core.config_io import ConfigError, load_config
from cell.hardware.joints import joint_names, positions_by_name
from cell.teleop.mapping import LookAtCamera, TableHomography, TableMappingConfig
from cell.images import check_image, image_to_rgb as image_array  # noqa: F401  (the nodes' names)

T = TypeVar("T")
JOINT_NAMES = joint_names()


# ---------------------------------------------------------------------------- parameters
def _flat_defaults(cls: type, prefix: str = "") -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    instance = cls()
    for f in dataclasses.fields(cls):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            defaults.update(_flat_defaults(hints[f.name], f"{prefix}{f.name}."))
        else:
            defaults[prefix + f.name] = list(value) if isinstance(value, tuple) else value
    return defaults


def config_from_parameters(node: Node, cls: type[T]) -> T:
    """Declare one ROS parameter per config field (default = dataclass default), build cls.

    Parameters are dynamically typed so YAML's `1` for a float field is fine; the dataclass
    loader checks types and validate() and raises ConfigError naming the field.

    Every field is read once, here, at start-up: a later `ros2 param set` of one of them is
    refused (SetParametersResult.successful false, the reason says so and whether the value
    would even pass validation) and logged, instead of being accepted and silently ignored."""
    values: dict[str, Any] = {}
    for name, default in _flat_defaults(cls).items():
        descriptor = ParameterDescriptor(dynamic_typing=True)
        # An empty list has no ROS type: declare it unset, keep the dataclass default if unset.
        value = node.declare_parameter(name, None if default == [] else default, descriptor).value
        if value is not None:
            values[name] = value
    try:
        config = _load(cls, values)
    except ConfigError as exc:
        raise ConfigError(f"node {node.get_name()}: parameter {exc}") from exc

    def refuse_changes(parameters: list[Parameter]) -> SetParametersResult:
        reason = startup_parameter_refusal(cls, values, {p.name: p.value for p in parameters})
        if reason is None:
            return SetParametersResult(successful=True)
        node.get_logger().warning(f"parameter change refused: {reason}")
        return SetParametersResult(successful=False, reason=reason)
    node.add_on_set_parameters_callback(refuse_changes)
    return config


def _load(cls: type[T], values: dict[str, Any]) -> T:
    """The config from flat parameter values. NaN is refused for every node (no parameter means
    anything by it, and comparisons with it pass silently: `nan <= 0` is false)."""
    for name, value in values.items():
        items = list(value) if isinstance(value, (list, tuple)) or hasattr(value, "tolist") else [value]
        if any(isinstance(v, float) and math.isnan(v) for v in items):
            raise ConfigError(f"{name}: NaN is not a value (got {items if len(items) > 1 else items[0]})")
    return load_config(cls, _nested(values))


def _nested(values: dict[str, Any]) -> dict[str, Any]:
    """{'a.b': v} -> {'a': {'b': v}}, ROS arrays as lists (what the dataclass loader reads)."""
    raw: dict[str, Any] = {}
    for name, value in values.items():
        node_dict = raw
        *parents, leaf = name.split(".")
        for part in parents:
            node_dict = node_dict.setdefault(part, {})
        node_dict[leaf] = list(value) if isinstance(value, (list, tuple)) or hasattr(value, "tolist") else value
    return raw


def startup_parameter_refusal(cls: type, current: dict[str, Any], changes: dict[str, Any]) -> str | None:
    """Why a runtime change of ``cls``'s parameters is refused (None: it touches none of them).
    The fields are read only at start-up; the reason also says if the new values would not even
    pass the start-up validation, so the operator learns both at once."""
    fields = set(_flat_defaults(cls))
    touched = sorted(name for name in changes if name in fields)
    if not touched:
        return None
    reason = (f"{', '.join(touched)} read only at start-up: not applied (restart the node with "
              + " ".join(f"-p {name}:={changes[name]}" for name in touched) + ")")
    try:
        _load(cls, {**current, **{name: changes[name] for name in touched}})
    except (ConfigError, TypeError, ValueError) as exc:
        reason += f"; the value is invalid too: {exc}"
    return reason


# ---------------------------------------------------------------------------- messages
def load_table_mapping(config: TableMappingConfig, corners: Sequence[Sequence[float]]) -> TableHomography:
    """The camera-to-table map ``config`` names: the sim camera model's, or the saved calibration
    (CalibrationError when there is none yet). Teleop and the console both map with this."""
    if config.mapping == "sim_camera":
        from sim.config import load_task_config  # sim is ROS-free; only its camera model is used
        cam = load_task_config(config.sim_task).camera
        camera = LookAtCamera(cam.eye, cam.look_at, cam.up, cam.focal_fraction * cam.width, cam.width, cam.height)
        return camera.table_homography(config.table_z, corners)
    return TableHomography.load(config.calibration_path())


def image_msg(frame: np.ndarray, stamp: TimeMsg, frame_id: str = "camera_color_optical_frame") -> Image:
    """RGB uint8 [H, W, 3] -> sensor_msgs/Image rgb8."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {frame.dtype} {frame.shape}")
    msg = Image(height=frame.shape[0], width=frame.shape[1], encoding="rgb8",
                is_bigendian=0, step=frame.shape[1] * 3)
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.data = np.ascontiguousarray(frame).tobytes()
    return msg


# The frame setpoint_delta's (dx, dy) are expressed in: the arm's base frame, the frame of the
# controller's ee_target and of the workspace box the controller clamps them into.
SETPOINT_FRAME = "link_base"


def setpoint_delta_msg(delta: Sequence[float], stamp: TimeMsg) -> Vector3Stamped:
    """setpoint_delta as the policy and teleop nodes both publish it: x = dx, y = dy (m, in
    SETPOINT_FRAME), z unused; stamp = the capture stamp of the image the action was chosen on
    (the controller drops older setpoints, the bag converter pairs the action with that image)."""
    msg = Vector3Stamped()
    msg.header.stamp, msg.header.frame_id = stamp, SETPOINT_FRAME
    msg.vector.x, msg.vector.y = float(delta[0]), float(delta[1])
    return msg


def joint_state_msg(positions: Sequence[float], stamp: TimeMsg) -> JointState:
    msg = JointState(name=list(JOINT_NAMES), position=[float(q) for q in positions])
    msg.header.stamp = stamp
    return msg


def joint_positions(msg: JointState) -> np.ndarray:
    """Finite positions ordered joint1..joint6 whatever the message's order (extra joints are
    ignored; no names = exactly six positions in order); ValueError says what is wrong
    (cell.hardware.joints.positions_by_name)."""
    return positions_by_name(msg.name, msg.position, JOINT_NAMES)


class DropCount:
    """What a node refused or dropped, by reason: every such message is counted (the log lines
    about them are throttled), and close() reports the totals."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1

    def report(self, node_name: str) -> None:
        # print: at close, rclpy's context (and the logger's output with it) may already be gone
        totals = "; ".join(f"{count} {reason}" for reason, count in self.counts.items()) or "nothing"
        print(f"[{node_name}] dropped or refused: {totals}", flush=True)


def stamp_ns(stamp: TimeMsg) -> int:
    """A header stamp as integer nanoseconds: exact, so stamps compare as the times they are."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def stamp_seconds(stamp: TimeMsg) -> float:
    # The same conversion as every clock reading here (nanoseconds * 1e-9): one instant is one
    # float, whichever way it arrived (sec + nanosec * 1e-9 could differ from it in the last bit).
    return stamp_ns(stamp) * 1e-9


def age_seconds(node: Node, stamp: TimeMsg) -> float:
    """How old a header stamp is on this node's clock."""
    return node.get_clock().now().nanoseconds * 1e-9 - stamp_seconds(stamp)


def publish_unless_shut_down(node: Node, publisher: Publisher, msg: Any) -> bool:
    """Publish, or return False once Ctrl-C has shut the node's context down.

    rclpy's signal handler shuts the context down in its own thread, so a thread that publishes
    (a capture loop, close() stopping a recording) can hit an invalid publisher at any moment -
    checking context.ok() first still races: that is shutdown, not a failure. Any other publish
    error is raised."""
    try:
        publisher.publish(msg)
    except _rclpy.RCLError:
        if node.context.ok():
            raise
        return False
    return True


# ---------------------------------------------------------------------------- e-stop
ESTOP_TOPIC = "controller/estop_latched"
# The controller publishes its e-stop state on change, transient local: a late joiner gets it too.
ESTOP_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class EStopWatch:
    """The controller's latched e-stop as seen by another node: components refuse to start an
    episode while ``latched`` (issue 27: an e-stop latches until the operator releases it)."""

    def __init__(self, node: Node) -> None:
        self.latched = False
        node.create_subscription(Bool, ESTOP_TOPIC, self._on_state, ESTOP_QOS)

    def _on_state(self, msg: Bool) -> None:
        self.latched = bool(msg.data)

    def refusal(self, what: str) -> str | None:
        """The reason to refuse ``what`` while the e-stop is latched, else None."""
        return (f"{what} refused: the controller's e-stop is latched (controller/release_estop releases it)"
                if self.latched else None)


# ---------------------------------------------------------------------------- main
def run_node(factory: Callable[[], Node], args: Sequence[str] | None = None, threads: int = 1) -> None:
    """rclpy.init, build the node, spin it, shut down cleanly on Ctrl-C / SIGTERM-driven
    shutdown; a node may define close() to release hardware.

    One thread (SingleThreadedExecutor) unless a node needs callbacks to overlap: this rclpy's
    MultiThreadedExecutor keeps re-yielding queued tasks while holding the GIL (ros2/rclpy#1452,
    fixed upstream in #1547), and with /clock + timers it slowed the lock-step sim stack 30x
    (real-time factor 0.03 vs 0.97: docs/BENCHMARKS.md, "Quiet-machine rerun")."""
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = factory()
        except Exception as exc:  # configuration / checkpoint / hardware errors at start-up
            print(f"fatal: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(1) from exc
        executor = SingleThreadedExecutor() if threads == 1 else MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if callable(close):
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
