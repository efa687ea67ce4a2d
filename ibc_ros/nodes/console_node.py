"""console_node: the operator console, a web page served by the stack (cell/console/server.py).

record_demos (role teleop): the live camera image with the workspace outline and the commanded
setpoint drawn on it; hold the mouse button and move to push (sent to teleop_node on
teleop/pointer, which maps and clamps it exactly as for every pointer); recorder buttons and
state; calibration by clicking the four workspace corners; in sim the task status.
real_push (role monitor): the camera, the policy's energy heatmap, latency and the node rates.
Both: an always-visible e-stop (controller/estop), release and reset.

  sub camera/image_raw, policy/energy_image (sensor_msgs/Image), controller/setpoint (PointStamped),
      ee_target (PoseStamped), recorder/status (String JSON), task/distance, task/score (Float32), task/success (Bool),
      policy/latency, policy/inference_time (Float32), controller/estop_latched (Bool),
      setpoint_delta, joint_command, joint_states (rates only)
  pub teleop/pointer (geometry_msgs/PointStamped, frame_id "image": pixels; NaN = release)
  calls recorder/start|stop|discard|mark_success, sim/reset, controller/estop|release_estop|reset,
      teleop/reload_calibration (std_srvs/Trigger)
"""
from __future__ import annotations

import concurrent.futures
import json
import math
import threading
import time
from typing import Any

from geometry_msgs.msg import PointStamped, PoseStamped, Vector3Stamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float32, String
from std_srvs.srv import Trigger

from cell.console.access import ConsoleAccess
from cell.console.config import ConsoleConfig
from cell.console.meters import RateMeter
from cell.console.server import ConsoleServer
from cell.control.config import controller_config_path, load_controller_config
from cell.teleop.mapping import CalibrationError, TableHomography, workspace_corners
from ibc_ros.nodes.common import (ESTOP_QOS, ESTOP_TOPIC, check_image, config_from_parameters, image_array,
                                  load_table_mapping, run_node)
from ibc_ros.nodes.teleop_node import SERVICE_FOR_ACTION as RECORDER_SERVICE_FOR_ACTION

SERVICE_FOR_ACTION = {**RECORDER_SERVICE_FOR_ACTION, "next_scene": "sim/reset", "estop": "controller/estop",
                      "release_estop": "controller/release_estop", "reset": "controller/reset"}
RATE_TOPICS = ("camera/image_raw", "setpoint_delta", "joint_command", "joint_states", "policy/energy_image")
STALE_S = 3.0   # a status older than this is shown as absent (its node has gone)
LASTING = ("estop", "commanded", "arm_target")   # latched state and the last command: valid until replaced


class ConsoleNode(Node):
    def __init__(self) -> None:
        super().__init__("console")
        self.config = config_from_parameters(self, ConsoleConfig)
        controller = load_controller_config(controller_config_path(self.config.controller_config))
        self.corners = workspace_corners(controller.workspace.x, controller.workspace.y)
        self.homography = self._load_mapping()
        self.rates = {topic: RateMeter() for topic in RATE_TOPICS}
        self._latest: dict[str, tuple[float, Any]] = {}     # what the page shows, with its arrival time
        self._lock = threading.Lock()
        self.pointer_pub = self.create_publisher(PointStamped, "teleop/pointer", 50)
        self._subscribe()
        self.service_clients = {action: self.create_client(Trigger, service) for action, service in SERVICE_FOR_ACTION.items()}
        self.reload_calibration = self.create_client(Trigger, "teleop/reload_calibration")
        access, generated = ConsoleAccess.for_bind(self.config.host, self.config.token)
        self.server = ConsoleServer(self.config, access, self)
        self.server.start()
        url = access.url(self.config.port)
        note = " (token generated for this run; give console_token:= to keep one)" if generated else ""
        self.get_logger().info(f"operator console ({self.config.role}): {url}{note}")
        print(f"operator console: {url}", flush=True)

    # ------------------------------------------------------------------ ROS inputs
    def _subscribe(self) -> None:
        self.create_subscription(Image, "camera/image_raw", lambda m: self._on_image("camera", m), qos_profile_sensor_data)
        self.create_subscription(Image, "policy/energy_image", lambda m: self._on_image("energy", m), 1)
        self.create_subscription(PointStamped, "controller/setpoint",
                                 lambda m: self._keep("commanded", (m.point.x, m.point.y)), 10)
        self.create_subscription(PoseStamped, "ee_target",
                                 lambda m: self._keep("arm_target", (m.pose.position.x, m.pose.position.y)), 10)
        self.create_subscription(String, "recorder/status", self._on_recorder_status, 10)
        self.create_subscription(Float32, "task/distance", lambda m: self._keep("distance", m.data), 10)
        self.create_subscription(Float32, "task/score", lambda m: self._keep("score", m.data), 10)
        self.create_subscription(Bool, "task/success", lambda m: self._keep("success", m.data), 10)
        self.create_subscription(Float32, "policy/latency", lambda m: self._keep("latency", m.data), 10)
        self.create_subscription(Float32, "policy/inference_time", lambda m: self._keep("inference", m.data), 10)
        self.create_subscription(Bool, ESTOP_TOPIC, lambda m: self._keep("estop", m.data), ESTOP_QOS)
        for topic, msgtype in (("setpoint_delta", Vector3Stamped), ("joint_command", JointState),
                               ("joint_states", JointState)):
            self.create_subscription(msgtype, topic, lambda _m, t=topic: self.rates[t].tick(), qos_profile_sensor_data)

    def _keep(self, key: str, value: Any) -> None:
        with self._lock:
            self._latest[key] = (time.monotonic(), value)

    def _fresh(self, key: str) -> Any:
        with self._lock:
            entry = self._latest.get(key)
        if entry is None or (key not in LASTING and time.monotonic() - entry[0] > STALE_S):
            return None
        return entry[1]

    def _on_image(self, kind: str, msg: Image) -> None:
        self.rates["camera/image_raw" if kind == "camera" else "policy/energy_image"].tick()
        try:
            check_image(msg)
        except ValueError as exc:
            self.get_logger().error(f"{kind} frame rejected: {exc}", throttle_duration_sec=2.0)
            return
        self.server.offer_frame(kind, image_array(msg))

    def _on_recorder_status(self, msg: String) -> None:
        try:
            self._keep("recorder", json.loads(msg.data))
        except json.JSONDecodeError:
            self.get_logger().warning("recorder/status is not JSON; ignored", throttle_duration_sec=5.0)

    def _load_mapping(self) -> TableHomography | None:
        try:
            return load_table_mapping(self.config, self.corners)
        except CalibrationError as exc:
            self.get_logger().warning(f"{exc}; calibrate from the console")
            return None

    # ------------------------------------------------------------------ ConsoleBridge (server thread)
    def point(self, uv: tuple[float, float] | None) -> None:
        msg = PointStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = "image"
        msg.point.x, msg.point.y = (math.nan, math.nan) if uv is None else uv
        self.pointer_pub.publish(msg)

    def call(self, action: str) -> concurrent.futures.Future:
        return self._call(self.service_clients[action], SERVICE_FOR_ACTION[action])

    def _call(self, client, service: str) -> concurrent.futures.Future:
        result: concurrent.futures.Future = concurrent.futures.Future()
        if not client.service_is_ready():
            result.set_result((False, f"{service} is not available (is its node running?)"))
            return result

        def done(future) -> None:
            reply = future.result()
            result.set_result((bool(reply.success), reply.message) if reply is not None else (False, "no reply"))
        client.call_async(Trigger.Request()).add_done_callback(done)
        return result

    def calibrate(self, clicks: list[tuple[float, float]]) -> concurrent.futures.Future:
        """Save the homography from the clicked corners where teleop reads it, then reload teleop."""
        size = self.server.image_size
        try:
            if size is None:
                raise CalibrationError("no camera frame yet")
            homography = TableHomography.from_points(clicks, self.corners, size)
        except CalibrationError as exc:
            failed: concurrent.futures.Future = concurrent.futures.Future()
            failed.set_result((False, str(exc)))
            return failed
        path = self.config.calibration_path()
        homography.save(path, clicks, self.corners)
        if self.config.mapping == "calibration":
            self.homography = homography
        self.get_logger().info(f"calibration from the console saved to {path}")
        saved: concurrent.futures.Future = concurrent.futures.Future()
        teleop = self._call(self.reload_calibration, "teleop/reload_calibration")
        teleop.add_done_callback(lambda f: saved.set_result((True, f"saved to {path}; teleop: {f.result()[1]}")))
        return saved

    def status(self) -> dict[str, Any]:
        recorder = self._fresh("recorder")
        distance, score, success = self._fresh("distance"), self._fresh("score"), self._fresh("success")
        latency, inference = self._fresh("latency"), self._fresh("inference")
        return {"estop": self._fresh("estop"), "recorder": recorder,
                "task": None if distance is None else {"distance": distance, "score": score, "success": bool(success)},
                "policy": None if latency is None else {"latency_ms": latency * 1e3,
                                                        "inference_ms": None if inference is None else inference * 1e3},
                "rates": {topic: round(meter.rate(), 1) for topic, meter in self.rates.items()},
                "overlay": self._overlay(), "corners": self.corners, "mapping": self.config.mapping,
                # Buttons whose node is not (yet) discovered: the page greys them instead of
                # letting the operator press into "not available".
                "unavailable": sorted(action for action in self.config.allowed_actions()
                                      if not self.service_clients[action].service_is_ready())}

    def _overlay(self) -> dict[str, Any] | None:
        size = self.server.image_size
        if self.homography is None or size is None:
            return None
        to_pixel = lambda xy: None if xy is None else [round(float(c), 1) for c in self.homography.to_pixel(xy, size)]  # noqa: E731
        return {"outline": [to_pixel(c) for c in self.corners],
                "commanded": to_pixel(self._fresh("commanded")),     # the controller's setpoint (5 Hz)
                "arm_target": to_pixel(self._fresh("arm_target"))}   # its interpolated target (100 Hz)

    def log(self, level: str, text: str) -> None:
        # One call site per severity: rclpy refuses a call site whose severity changes.
        if level == "info":
            self.get_logger().info(text)
        elif level == "warning":
            self.get_logger().warning(text)
        else:
            self.get_logger().error(text)

    def close(self) -> None:
        self.server.stop()


def main(args: list[str] | None = None) -> None:
    run_node(ConsoleNode, args)


if __name__ == "__main__":
    main()
