"""camera node: RealSense (or V4L2) RGB frames -> camera/image_raw (sensor_msgs/Image rgb8,
header.stamp = capture time). Without a camera it logs a clear error and retries.
Camera logic: cell/hardware/camera.py. Parameters: CameraNodeConfig fields."""
from __future__ import annotations

import threading
from dataclasses import dataclass

from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import Image

from cell.hardware.camera import Camera, CameraConfig, CameraError, open_camera
from ibc_ros.nodes.common import config_from_parameters, image_msg, publish_unless_shut_down, run_node


@dataclass
class CameraNodeConfig(CameraConfig):
    frame_id: str = "camera_color_optical_frame"
    retry_period: float = 2.0    # s between attempts to (re)open the camera


class CameraNode(Node):
    def __init__(self) -> None:
        super().__init__("camera")
        self.config = config_from_parameters(self, CameraNodeConfig)
        # Sensor-data QoS (best effort, keep last): a late frame is worth less than the next one.
        self.publisher = self.create_publisher(Image, "camera/image_raw", qos_profile_sensor_data)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._capture_loop, daemon=True)
        self._thread.start()

    def _open(self) -> Camera | None:
        try:
            camera = open_camera(self.config)
        except CameraError as exc:
            self.get_logger().error(f"{exc}; retrying in {self.config.retry_period:.0f} s")
            return None
        self.get_logger().info(f"streaming {camera.device_name} {self.config.width}x{self.config.height}"
                               f"@{self.config.fps} on camera/image_raw")
        return camera

    def _capture_loop(self) -> None:
        while not self._stop.is_set():
            camera = self._open()
            if camera is None:
                self._stop.wait(self.config.retry_period)
                continue
            try:
                while not self._stop.is_set():
                    frame = camera.read()
                    stamp = Time(nanoseconds=int(frame.capture_time * 1e9)).to_msg()
                    if not publish_unless_shut_down(self, self.publisher,
                                                    image_msg(frame.rgb, stamp, self.config.frame_id)):
                        return  # Ctrl-C: close() is on its way
            except CameraError as exc:
                self.get_logger().error(f"camera lost: {exc}; reopening")
            finally:
                camera.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.config.frame_timeout + 1.0)


def main(args: list[str] | None = None) -> None:
    run_node(CameraNode, args)


if __name__ == "__main__":
    main()
