"""controller node: setpoint_delta (5 Hz) -> joint targets + ee_target (100 Hz).

All motion logic (workspace clamp, linear interpolation from the last commanded target over the
policy period, PyBullet IK, per-cycle joint step limit, hold, e-stop) is
cell.control.CartesianController configured by config/controller.yaml - the same code and
file the sim env uses. This node only wires it to topics and services:
  sub setpoint_delta (geometry_msgs/Vector3Stamped: x=dx, y=dy m; stamp = image stamp)
  pub the joint targets, by `output`: joint_command (sensor_msgs/JointState, our xarm_driver_node
      or the sim), or to a ros2_control controller (xarm_ros2's cell) <controller>/joint_trajectory
      (trajectory_msgs/JointTrajectory, one point per cycle) or <controller>/commands
      (std_msgs/Float64MultiArray); these two also sub joint_states (the joint_state_broadcaster's,
      read by name) and pub /diagnostics - cell.hardware.ros2_control_output keeps the driver's
      guarantees on that stream (start from the measured pose, stop on stale joint_states, on the
      e-stop and when the arm does not follow, the arm's limits on every target).
  pub ee_target (geometry_msgs/PoseStamped),
      controller/setpoint (geometry_msgs/PointStamped: the clamped goal, on every change)
      controller/estop_latched (std_msgs/Bool, transient local: latest state for late joiners)
  srv controller/estop (latches), controller/release_estop (the operator's explicit release),
      controller/reset (back to the start through every limit, at return_speed),
      controller/start_episode (sim only, reset_jumps: the command jumps to the start pose where
      the sim has just placed the arm) - reset and start_episode are refused while latched.
Setpoints stamped before the last reset, or older than max_setpoint_age, are dropped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PointStamped, PoseStamped, Vector3Stamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from cell.control import CartesianController, EStopLatched, controller_config_path, load_controller_config
from cell.hardware.ros2_control_output import ArmOutputConfig, Ros2ControlStream, StreamState, duration_parts
from ibc_ros.nodes.common import (ESTOP_QOS, ESTOP_TOPIC, DropCount, age_seconds, config_from_parameters,
                                  joint_state_msg, run_node, stamp_ns)


@dataclass
class ControllerNodeConfig(ArmOutputConfig):
    config_file: str = "controller.yaml"   # ControllerConfig YAML; a bare name is looked up in config/
                                           # (empty: config/controller.yaml; the sim node takes the same)
    max_setpoint_age: float = 1.0          # s; older setpoints are late and dropped
    # controller/start_episode: true (sim) jumps the command to the start pose, where the sim has
    # just placed the arm; false (hardware) refuses it. controller/reset always drives back in a
    # straight line at return_speed, through every limit.
    reset_jumps: bool = False
    return_speed: float = 0.1              # m/s of that return

    def validate(self) -> None:
        super().validate()
        if self.reset_jumps and self.ros2_control:
            raise ValueError(f"output {self.output} with reset_jumps true: the sim (sim:=true, which sets "
                             "reset_jumps) takes joint_command only; a ros2_control output drives an arm brought "
                             "up by xarm_ros2 (sim:=false)")
        if self.max_setpoint_age <= 0:
            raise ValueError(f"max_setpoint_age must be positive, got {self.max_setpoint_age}")
        if self.return_speed <= 0:
            raise ValueError(f"return_speed must be positive, got {self.return_speed}")


class ControllerNode(Node):
    def __init__(self) -> None:
        super().__init__("controller")
        self.node_config = config_from_parameters(self, ControllerNodeConfig)
        self.drops = DropCount()
        self.config = load_controller_config(controller_config_path(self.node_config.config_file))
        self.controller = CartesianController(self.config)
        self._orientation = self.config.ik.tip_orientation
        # Integer nanoseconds: a setpoint stamped at the reset's instant is not "before" it.
        self._reset_ns = self.get_clock().now().nanoseconds
        self.stream = Ros2ControlStream(self.controller, self.node_config) if self.node_config.ros2_control else None
        if self.stream is None:
            self.joint_pub = self.create_publisher(JointState, "joint_command", 10)
        else:
            self._start_ros2_control_output()
        self.target_pub = self.create_publisher(PoseStamped, "ee_target", 10)
        self.setpoint_pub = self.create_publisher(PointStamped, "controller/setpoint", 10)
        self.estop_pub = self.create_publisher(Bool, ESTOP_TOPIC, ESTOP_QOS)
        self.create_subscription(Vector3Stamped, "setpoint_delta", self._on_setpoint, 10)
        self.create_service(Trigger, "controller/estop", self._on_estop)
        self.create_service(Trigger, "controller/release_estop", self._on_release_estop)
        self.create_service(Trigger, "controller/reset", self._on_reset)
        self.create_service(Trigger, "controller/start_episode", self._on_start_episode)
        self.create_timer(self.config.period_s, self._on_tick)
        self._reset_ns = self.get_clock().now().nanoseconds
        self.controller.reset(t=self._reset_ns * 1e-9)   # the driver moves the arm here before streaming
        self._publish_setpoint()
        self.estop_pub.publish(Bool(data=False))

    def _start_ros2_control_output(self) -> None:
        c = self.node_config
        self._time_from_start = Duration()
        self._time_from_start.sec, self._time_from_start.nanosec = duration_parts(self.config.period_s)
        command_type = JointTrajectory if c.output == "joint_trajectory" else Float64MultiArray
        self.command_pub = self.create_publisher(command_type, c.command_topic, 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)  # ROS convention: global
        # Best effort, newest only: matches any joint_states publisher and never queues old poses.
        joint_states = self.create_subscription(JointState, c.joint_states_topic, self._on_joint_states,
                                                qos_profile_sensor_data)
        self.create_timer(0.5, self._publish_diagnostics)
        self.get_logger().info(f"output {c.output}: {self.command_pub.topic_name}, joints "
                               f"{list(c.joint_names)}, from the measured pose on {joint_states.topic_name}")

    def _on_joint_states(self, msg: JointState) -> None:
        try:
            self.stream.on_joint_state(msg.name, msg.position, self._now())
        except ValueError as exc:
            self.drops.add("joint_states without the arm's joints")
            self.get_logger().error(f"joint_states ignored: {exc}", throttle_duration_sec=1.0)

    def _command_msg(self, joints: np.ndarray) -> JointTrajectory | Float64MultiArray:
        positions = [float(q) for q in joints]
        if self.node_config.output == "forward_position":
            return Float64MultiArray(data=positions)   # in the controller's `joints` order: joint1..joint6
        # header.stamp stays zero: the controller starts the point when it arrives (a stamp from this
        # PC's clock would put it in the past on a robot PC whose clock runs ahead, and it is dropped).
        point = JointTrajectoryPoint(positions=positions, time_from_start=self._time_from_start)
        return JointTrajectory(joint_names=list(self.node_config.joint_names), points=[point])

    def _stream_step(self, t: float) -> np.ndarray | None:
        """Send this cycle's target, if the stream sends one; the Cartesian target, or None."""
        before = self.stream.state
        joints, target = self.stream.step(t)
        if joints is not None:
            self.command_pub.publish(self._command_msg(joints))
        if self.stream.state != before:
            if self.stream.streaming:
                self._publish_setpoint()   # the goal is now the measured tip
            self._report_stream_change(before)
        elif self.stream.state in (StreamState.NO_JOINT_STATES, StreamState.START_REFUSED):
            self.get_logger().warning(self.stream.reason, throttle_duration_sec=5.0)   # still waiting
        return target

    def _report_stream_change(self, before: StreamState) -> None:
        """Log every change of the stream's state (the arm-not-following loop at most once a
        second) and publish the diagnostics at once."""
        state, logger = self.stream.state, self.get_logger()
        if state == StreamState.STREAMING:
            if before == StreamState.RESYNC:
                return
            logger.info(f"{self.stream.reason}: {np.round(self.stream.controller.joint_command, 3).tolist()}")
        elif state == StreamState.RESYNC:
            logger.warning(self.stream.reason, throttle_duration_sec=1.0)
            return
        elif state == StreamState.ESTOPPED:
            logger.warning(self.stream.reason)
        else:
            logger.error(self.stream.reason)
        self._publish_diagnostics()

    def _publish_diagnostics(self) -> None:
        stream, now = self.stream, self._now()
        level = {StreamState.STREAMING: DiagnosticStatus.OK, StreamState.ESTOPPED: DiagnosticStatus.WARN,
                 StreamState.RESYNC: DiagnosticStatus.WARN}.get(stream.state, DiagnosticStatus.ERROR)
        age = stream.joint_states_age(now)
        values = {"output": self.node_config.output, "topic": self.command_pub.topic_name,
                  "state": stream.state.value, "joint_states_age": "none" if age is None else f"{age:.3f}",
                  "sent": stream.sent, "refused_limits": stream.refused_limits, "resyncs": stream.resyncs,
                  "last_refusal": stream.last_refusal}
        diag = DiagnosticStatus(level=level, name=self.get_fully_qualified_name(),
                                hardware_id=self.node_config.controller_name, message=stream.reason,
                                values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[diag])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)

    def _not_streaming(self) -> str | None:
        """Why setpoints and resets are refused now: a ros2_control output that is not streaming."""
        if self.stream is None or self.stream.streaming:
            return None
        return f"not streaming to {self.command_pub.topic_name}: {self.stream.reason}"

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _reset(self) -> str:
        """Back to the start through every limit (raises EStopLatched while latched)."""
        now_ns = self.get_clock().now().nanoseconds
        now = now_ns * 1e-9
        arrival = self.controller.return_to_start(now, self.node_config.return_speed)
        self._reset_ns = now_ns
        self._publish_setpoint()
        return (f"returning to the start at {self.node_config.return_speed} m/s, "
                f"{arrival - now:.1f} s; setpoints are ignored until then")

    def _publish_setpoint(self) -> None:
        msg = PointStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.point.x, msg.point.y, msg.point.z = (float(v) for v in self.controller.setpoint)
        self.setpoint_pub.publish(msg)

    def _on_setpoint(self, msg: Vector3Stamped) -> None:
        if stamp_ns(msg.header.stamp) < self._reset_ns:
            self.drops.add("setpoints from before the last reset (a frame of the previous episode)")
            return
        age = age_seconds(self, msg.header.stamp)
        if age > self.node_config.max_setpoint_age:
            self.drops.add(f"setpoints older than max_setpoint_age ({self.node_config.max_setpoint_age} s)")
            self.get_logger().warning(f"dropping a setpoint {age:.2f} s late", throttle_duration_sec=1.0)
            return
        not_streaming = self._not_streaming()
        if not_streaming is not None and not self.controller.estopped:
            self.drops.add("setpoints while not streaming to the arm's controller")
            self.get_logger().warning(f"setpoint ignored: {not_streaming}", throttle_duration_sec=2.0)
            return
        if self.controller.estopped:
            self.drops.add("setpoints while the e-stop was latched")
            self.get_logger().warning("e-stop latched: setpoint ignored (controller/release_estop releases it)",
                                      throttle_duration_sec=2.0)
            self._publish_setpoint()   # taken, and dropped: a lock-step sim goes on
            return
        if self.controller.returning(self._now()):
            self.drops.add("setpoints while returning to the start")
            self.get_logger().warning("returning to the start: setpoint ignored", throttle_duration_sec=2.0)
            self._publish_setpoint()
            return
        try:
            self.controller.on_setpoint_delta(np.array([msg.vector.x, msg.vector.y]), self._now())
        except ValueError as exc:  # NaN/inf: the envelope refuses it, the arm keeps its target
            self.drops.add("setpoints the envelope refused (not finite)")
            self.get_logger().error(f"setpoint rejected: {exc}", throttle_duration_sec=1.0)
            return
        self._publish_setpoint()

    def _on_tick(self) -> None:
        now = self.get_clock().now()
        stamp = now.to_msg()  # the exact time the target was interpolated for
        if self.stream is not None:
            target = self._stream_step(now.nanoseconds * 1e-9)
            if target is None:
                return   # not streaming: no target is commanded
        else:
            joints, target = self.controller.step(now.nanoseconds * 1e-9)
            self.joint_pub.publish(joint_state_msg(joints, stamp))
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, "link_base"
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in target)
        (pose.pose.orientation.x, pose.pose.orientation.y,
         pose.pose.orientation.z, pose.pose.orientation.w) = (float(v) for v in self._orientation)
        self.target_pub.publish(pose)

    def _on_estop(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.controller.estop(self._now())
        self.estop_pub.publish(Bool(data=True))
        self.get_logger().warning("E-STOP latched: holding the current target; setpoints, resets and new "
                                  "episodes are refused until controller/release_estop")
        response.success, response.message = True, "e-stop latched, holding position"
        return response

    def _on_release_estop(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        was = self.controller.estopped
        self.controller.release_estop(self._now())
        self.estop_pub.publish(Bool(data=False))
        message = ("e-stop released by the operator: holding the current target, setpoints accepted again"
                   if was else "e-stop was not latched")
        self.get_logger().warning(message)
        response.success, response.message = True, message
        return response

    def _refused(self, what: str, response: Trigger.Response, exc: EStopLatched) -> Trigger.Response:
        self.get_logger().error(f"{what} refused: {exc}", throttle_duration_sec=2.0)
        response.success, response.message = False, f"{what} refused: {exc}"
        return response

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        not_streaming = self._not_streaming()
        if not_streaming is not None and not self.controller.estopped:
            response.success, response.message = False, f"controller/reset refused: {not_streaming}"
            self.get_logger().error(response.message, throttle_duration_sec=2.0)
            return response
        try:
            message = self._reset()
        except EStopLatched as exc:
            return self._refused("controller/reset", response, exc)
        self.get_logger().info(message)
        response.success = True
        response.message = f"{message} ({np.round(self.controller.setpoint, 3).tolist()})"
        return response

    def _on_start_episode(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Sim only: the sim has placed the arm at the start pose; the command jumps there."""
        if not self.node_config.reset_jumps:
            response.success = False
            response.message = ("controller/start_episode is for a sim that places the arm itself "
                                "(reset_jumps: true); use controller/reset")
            self.get_logger().error(response.message, throttle_duration_sec=2.0)
            return response
        now_ns = self.get_clock().now().nanoseconds
        try:
            self.controller.reset(t=now_ns * 1e-9)
        except EStopLatched as exc:
            return self._refused("starting an episode", response, exc)
        self._reset_ns = now_ns
        self._publish_setpoint()
        response.success, response.message = True, "command at the start pose, where the arm was placed"
        return response

    def close(self) -> None:
        self.drops.report(self.get_name())
        self.controller.ik.close()


def main(args: list[str] | None = None) -> None:
    run_node(ControllerNode, args)


if __name__ == "__main__":
    main()
