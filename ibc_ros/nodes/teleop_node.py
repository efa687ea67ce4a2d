"""teleop_node: mouse demonstrations through the policy's own setpoint interface.

Publishes setpoint_delta (geometry_msgs/Vector3Stamped, dx/dy metres, stamp = the camera frame
the operator was looking at) at 5 Hz while the pointer is engaged. Input:
  * the operator console (console_node, a web page): it drives the two topics below;
  * OpenCV window (display:=window, where an OpenCV build with GUI support is installed): live
    camera image with the workspace drawn; hold the left button and move to push; keys r/s/d/g =
    start/stop/discard/success, c = calibrate;
  * topics (always):
      teleop/pointer geometry_msgs/PointStamped: frame_id "table" (x, y metres, base frame) or
                     "image" (x = u, y = v pixels of camera/image_raw); NaN x = release;
      teleop/key     std_msgs/String: a bound key or an action name (start, stop, discard,
                     success).
While released, the commanded position follows controller/setpoint (PointStamped, the
controller's last commanded target). Key actions call the recorder's services recorder/start|stop|discard|mark_success.
Service teleop/reload_calibration (std_srvs/Trigger): read calibration_file again (the console
saves a new calibration there).
"""
from __future__ import annotations

import math
import time
from collections import deque

import numpy as np
import rclpy
from geometry_msgs.msg import PointStamped, Vector3Stamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from cell.control.config import controller_config_path, load_controller_config
from cell.control.envelope import SafetyEnvelope
from ibc_ros.nodes.common import (check_image, config_from_parameters, image_array, load_table_mapping, run_node,
                                  setpoint_delta_msg)
from cell.teleop.commander import RECORDER_ACTIONS, TeleopCommander, TeleopConfig
from cell.teleop.mapping import CalibrationError, TableHomography, workspace_corners

TABLE_FRAMES = ("table", "")
IMAGE_FRAMES = ("image", "pixels")
RECORDER_WAIT_S = 5.0   # a key pressed while the stack starts waits this long for the recorder
SERVICE_FOR_ACTION = {"start": "recorder/start", "stop": "recorder/stop",
                      "discard": "recorder/discard", "success": "recorder/mark_success"}


class TeleopNode(Node):
    def __init__(self) -> None:
        super().__init__("teleop")
        self.config = config_from_parameters(self, TeleopConfig)
        controller = load_controller_config(controller_config_path(self.config.controller_config))
        self.corners = workspace_corners(controller.workspace.x, controller.workspace.y)
        self.commander = TeleopCommander(SafetyEnvelope(controller), controller.start_xy,
                                         self.config.pointer_timeout_s)
        self.homography = self._load_mapping()
        self.frame: Image | None = None
        self.status = "idle"
        self._setpoint_pub = self.create_publisher(
            Vector3Stamped, "setpoint_delta", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        best_effort = QoSProfile(depth=2, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(Image, "camera/image_raw", self._on_image, best_effort)
        self.create_subscription(PointStamped, "controller/setpoint", self._on_controller_setpoint, 10)
        self.create_subscription(PointStamped, "teleop/pointer", self._on_pointer, 50)
        self.create_subscription(String, "teleop/key", lambda msg: self.handle_key(msg.data), 50)
        self.create_service(Trigger, "teleop/reload_calibration", self._on_reload_calibration)
        self._recorder_clients = {a: self.create_client(Trigger, s) for a, s in SERVICE_FOR_ACTION.items()}
        self._queued_actions: deque[str] = deque()
        self._queued_since = time.monotonic()   # when the oldest queued action became the next one
        self._call_in_flight = False
        self.create_timer(1.0 / self.config.rate_hz, self._tick)
        self.window = self._open_window()

    # -- mapping ------------------------------------------------------------------------------
    def _load_mapping(self) -> TableHomography | None:
        try:
            return load_table_mapping(self.config, self.corners)
        except CalibrationError as exc:
            self.get_logger().warning(f"{exc}; image pointer events are ignored until calibrated")
            return None

    def _on_reload_calibration(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.config.mapping != "calibration":
            response.success = False
            response.message = (f"mapping is {self.config.mapping}: the pointer is mapped by the sim camera model, "
                                f"not by {self.config.calibration_path()}")
            return response
        try:
            self.homography = TableHomography.load(self.config.calibration_path())
        except CalibrationError as exc:
            response.success, response.message = False, str(exc)
            return response
        self.commander.release()   # the next pointer event is mapped with the new calibration
        response.success, response.message = True, f"calibration reloaded from {self.config.calibration_path()}"
        self.get_logger().info(response.message)
        return response

    # -- inputs -------------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        try:
            check_image(msg)  # a bad frame is never shown nor used for the pixel mapping
        except ValueError as exc:
            self.get_logger().error(f"camera frame rejected: {exc}", throttle_duration_sec=2.0)
            return
        self.frame = msg

    def _on_controller_setpoint(self, msg: PointStamped) -> None:
        self.commander.follow(np.array([msg.point.x, msg.point.y]))

    def _on_pointer(self, msg: PointStamped) -> None:
        if math.isnan(msg.point.x) or math.isnan(msg.point.y):
            self.commander.release()
            return
        frame = msg.header.frame_id
        if frame in TABLE_FRAMES:
            xy = np.array([msg.point.x, msg.point.y])
        elif frame in IMAGE_FRAMES:
            xy = self._pixel_to_table((msg.point.x, msg.point.y))
            if xy is None:
                return
        else:
            self.get_logger().warning(f"teleop/pointer frame_id {frame!r} is not one of "
                                      f"{TABLE_FRAMES + IMAGE_FRAMES}; ignored")
            return
        self.commander.point(xy, time.monotonic())

    def _pixel_to_table(self, uv: tuple[float, float]) -> np.ndarray | None:
        if self.homography is None:
            self.get_logger().warning("no camera-to-table mapping yet (calibrate first)", throttle_duration_sec=5.0)
            return None
        size = (self.frame.width, self.frame.height) if self.frame is not None else None
        return self.homography.to_table(uv, size)

    def handle_key(self, key: str) -> None:
        action = self.config.keys.action_for(key.strip())
        if action in RECORDER_ACTIONS:
            self._call_recorder(action)
        elif action == "calibrate":
            self._start_calibration()
        elif action == "quit":
            rclpy.shutdown(context=self.context)
        else:
            self.get_logger().warning(f"key {key!r} is not bound to an action")

    def _call_recorder(self, action: str) -> None:
        # One request at a time: calls on different services may be served in any order, and
        # "success" then "stop" pressed quickly must reach the recorder in that order.
        self._queued_actions.append(action)
        if len(self._queued_actions) == 1:
            self._queued_since = time.monotonic()
            self._send_next_action()

    def _send_next_action(self) -> None:
        """Send the oldest queued action; one pressed while the recorder is still being discovered
        waits up to RECORDER_WAIT_S for its service (retried from _tick) before it is refused."""
        while self._queued_actions and not self._call_in_flight:
            action = self._queued_actions[0]
            client = self._recorder_clients[action]
            if client.service_is_ready():
                self._call_in_flight = True
                future = client.call_async(Trigger.Request())
                future.add_done_callback(lambda f: self._on_recorder_reply(action, f))
                return
            if time.monotonic() - self._queued_since < RECORDER_WAIT_S:
                return
            self.get_logger().error(f"{SERVICE_FOR_ACTION[action]} is not available: is recorder_node running?")
            self._queued_actions.popleft()
            self._queued_since = time.monotonic()

    def _on_recorder_reply(self, action: str, future) -> None:
        reply = future.result()
        if reply is not None and reply.success:
            self.status = {"start": "RECORDING", "success": "RECORDING (success)"}.get(action, "idle")
            self.get_logger().info(reply.message)
        else:
            self.get_logger().warning(f"{action} refused: {reply.message if reply else 'no reply'}")
        self._call_in_flight = False
        self._queued_actions.popleft()
        self._queued_since = time.monotonic()
        self._send_next_action()

    # -- output -------------------------------------------------------------------------------
    def _tick(self) -> None:
        self._send_next_action()   # an action still waiting for the recorder's service
        delta = self.commander.tick(time.monotonic())
        if delta is None:
            return
        # The operator acted on the frame on screen: carry its capture stamp, like the policy.
        stamp = self.frame.header.stamp if self.frame is not None else self.get_clock().now().to_msg()
        self._setpoint_pub.publish(setpoint_delta_msg(delta, stamp))

    # -- optional window ----------------------------------------------------------------------
    def _open_window(self):
        if self.config.display != "window":
            return None
        from cell.teleop.window import TeleopWindow
        window = TeleopWindow()
        self.create_timer(1.0 / 30.0, self._pump_window)
        return window

    def _pump_window(self) -> None:
        from cell.teleop.window import draw_overlay
        if self.frame is None:
            return
        rgb = image_array(self.frame)
        mouse = self.window.mouse
        if self.window.calibrating and len(mouse.clicks) == len(self.corners):
            self._finish_calibration()
        if mouse.pressed and mouse.uv is not None and not self.window.calibrating:
            xy = self._pixel_to_table(mouse.uv)
            if xy is not None:
                self.commander.point(xy, time.monotonic())
        elif not mouse.pressed and self.commander.engaged and not self.window.calibrating:
            self.commander.release()
        status = f"{self.status} | r start  s stop  d discard  g success  c calibrate"
        if self.window.calibrating:
            status = f"CALIBRATION: click workspace corner {len(mouse.clicks) + 1} of {len(self.corners)}"
        image = draw_overlay(rgb, self.homography, self.corners, self.commander.commanded,
                             self.commander.target, status, mouse.clicks if self.window.calibrating else ())
        key = self.window.show(image)
        if key is not None:
            self.handle_key(key)

    def _start_calibration(self) -> None:
        if self.window is None:
            self.get_logger().error("calibration needs the teleop window (display:=window)")
            return
        self.commander.release()
        self.window.mouse.clicks.clear()
        self.window.calibrating = True

    def _finish_calibration(self) -> None:
        clicks = list(self.window.mouse.clicks)
        self.window.calibrating = False
        self.window.mouse.clicks.clear()
        size = (self.frame.width, self.frame.height)
        try:
            homography = TableHomography.from_points(clicks, self.corners, size)
        except CalibrationError as exc:
            self.get_logger().error(f"calibration failed: {exc}")
            return
        homography.save(self.config.calibration_path(), clicks, self.corners)
        self.homography = homography
        self.get_logger().info(f"calibration saved to {self.config.calibration_path()}")

    def close(self) -> None:
        if self.window is not None:
            self.window.close()


def main(args: list[str] | None = None) -> None:
    run_node(TeleopNode, args)


if __name__ == "__main__":
    main()
