"""xarm_driver node: joint_command -> xArm6 (servo mode), joint_states at 100 Hz, diagnostics.

Topics: sub joint_command (sensor_msgs/JointState), pub joint_states (sensor_msgs/JointState,
100 Hz), driver/command_sent (the targets sent, or in dry_run the ones that would be),
/diagnostics (diagnostic_msgs/DiagnosticArray, 2 Hz and on every fault).
Service: driver/recover (std_srvs/Trigger). Parameters: XArmDriverConfig fields + publish_rate.
All arm logic is cell/hardware/xarm_driver.py; this file only wires it to ROS.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from cell.hardware.xarm_driver import (DriverError, DriverStatus, Phase, XArmDriver,
                                          XArmDriverConfig, describe_warning)
from ibc_ros.nodes.common import (age_seconds, config_from_parameters, joint_positions,
                                  joint_state_msg, run_node, stamp_seconds)


@dataclass
class DriverNodeConfig(XArmDriverConfig):
    publish_rate: float = 100.0       # joint_states Hz
    reconnect_period: float = 2.0     # s between connection attempts while the arm is unreachable


class XArmDriverNode(Node):
    def __init__(self) -> None:
        super().__init__("xarm_driver")
        self.config = config_from_parameters(self, DriverNodeConfig)
        # the driver logic logs through Python logging, from its own threads: stamp each line
        logging.basicConfig(level=logging.INFO, format="[%(created).3f] %(levelname)s %(name)s: %(message)s")
        self.driver = XArmDriver(self.config, on_command=self._publish_sent, on_fault=self._on_fault)
        latest_only = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 history=HistoryPolicy.KEEP_LAST)
        self.joint_pub = self.create_publisher(JointState, "joint_states", 10)
        self.sent_pub = self.create_publisher(JointState, "driver/command_sent", 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)  # ROS convention: global
        self.create_subscription(JointState, "joint_command", self._on_command, latest_only)
        self.create_service(Trigger, "driver/recover", self._on_recover,
                            callback_group=MutuallyExclusiveCallbackGroup())
        self.create_timer(1.0 / self.config.publish_rate, self._publish_joints)
        self.create_timer(0.5, self._publish_diagnostics)
        self._reported_refusals = 0   # refused_limits at the last diagnostics
        self._connect_timer = self.create_timer(self.config.reconnect_period, self._try_connect)
        self._try_connect()

    def _try_connect(self) -> None:
        if self.driver.status().phase != Phase.DISCONNECTED:
            return
        try:
            self.driver.connect()
        except DriverError as exc:
            self.get_logger().error(f"{exc}; retrying every {self.config.reconnect_period:.0f} s")
            return
        self._connect_timer.cancel()
        mode = "DRY RUN (no motion)" if self.config.dry_run else "live"
        self.get_logger().info(f"connected to the xArm at {self.config.robot_ip}, {mode}")

    def _on_command(self, msg: JointState) -> None:
        try:
            accepted = self.driver.submit(joint_positions(msg), age_seconds(self, msg.header.stamp),
                                          stamp_seconds(msg.header.stamp))
        except ValueError as exc:
            self.get_logger().error(f"bad joint_command rejected: {exc}", throttle_duration_sec=1.0)
            return
        if not accepted:
            self.get_logger().warning("stale joint_command refused", throttle_duration_sec=1.0)

    def _publish_joints(self) -> None:
        q = self.driver.joint_positions()
        if q is not None:
            self.joint_pub.publish(joint_state_msg(q, self.get_clock().now().to_msg()))

    def _publish_sent(self, q) -> None:
        self.sent_pub.publish(joint_state_msg(q, self.get_clock().now().to_msg()))

    def _on_fault(self, status: DriverStatus) -> None:
        self.get_logger().error(f"xArm fault: {status.message}; call driver/recover once the cause is cleared")
        self._publish_diagnostics()

    def _on_recover(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            status = self.driver.recover()
        except DriverError as exc:
            response.success, response.message = False, str(exc)
            self.get_logger().error(f"recover failed: {exc}")
            return response
        response.success = status.phase in (Phase.WAITING_FOR_START, Phase.STREAMING, Phase.DRY_RUN)
        response.message = f"{status.phase.value}: {status.message}"
        self.get_logger().info(f"recover: {response.message}")
        return response

    def _publish_diagnostics(self) -> None:
        status = self.driver.status()
        refusing = status.refused_limits > self._reported_refusals   # since the last diagnostics
        self._reported_refusals = status.refused_limits
        level = {Phase.FAULT: DiagnosticStatus.ERROR, Phase.DISCONNECTED: DiagnosticStatus.ERROR}.get(
            status.phase, DiagnosticStatus.WARN if status.warn_code or refusing else DiagnosticStatus.OK)
        message = (f"refusing joint targets (holding): {status.last_refusal}" if refusing and
                   status.phase not in (Phase.FAULT, Phase.DISCONNECTED) else status.message)
        values = {"phase": status.phase.value, "error_code": status.error_code,
                  "warn_code": status.warn_code, "warning": describe_warning(status.warn_code),
                  "state": status.state, "mode": status.mode, "sent": status.sent,
                  "refused_stale": status.refused_stale, "refused_limits": status.refused_limits,
                  "last_refusal": status.last_refusal,
                  "max_call_ms": round(status.max_call_s * 1000, 1), "dry_run": self.config.dry_run}
        diag = DiagnosticStatus(level=level, name="xarm_driver", hardware_id=self.config.robot_ip,
                                message=message,
                                values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[diag])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)

    def close(self) -> None:
        self.driver.close()


def main(args: list[str] | None = None) -> None:
    run_node(XArmDriverNode, args, threads=2)  # driver/recover may wait on the SDK: joint_states go on


if __name__ == "__main__":
    main()
