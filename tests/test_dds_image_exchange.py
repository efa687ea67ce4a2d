"""Foundation: two separate processes exchange sensor_msgs/Image over real DDS."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.ros_processes import python_script, running

pytestmark = pytest.mark.ros

PUBLISHER = """
    import numpy as np, rclpy
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node("test_image_publisher")
    pub = node.create_publisher(Image, "camera/image_raw", 10)
    frame = (np.arange(360 * 640 * 3, dtype=np.uint32) * 7 % 251).astype(np.uint8)
    count = 0
    def publish():
        global count
        msg = Image(height=360, width=640, encoding="rgb8", step=640 * 3, data=frame.tobytes())
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = str(count)
        count += 1
        pub.publish(msg)
    node.create_timer(0.05, publish)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
"""

SUBSCRIBER = """
    import json, sys, numpy as np, rclpy
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node("test_image_subscriber")
    got = []
    node.create_subscription(Image, "camera/image_raw", got.append, 10)
    deadline = node.get_clock().now().nanoseconds + 30e9
    while len(got) < 5 and node.get_clock().now().nanoseconds < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    msg = got[-1] if got else None
    print(json.dumps(None if msg is None else {
        "count": len(got), "height": msg.height, "width": msg.width, "encoding": msg.encoding,
        "checksum": int(np.frombuffer(bytes(msg.data), np.uint8).astype(np.int64).sum()),
        "frame_ids": [m.header.frame_id for m in got]}))
"""


def test_image_crosses_process_boundary_over_dds(tmp_path):
    import numpy as np

    expected = int((np.arange(360 * 640 * 3, dtype=np.uint32) * 7 % 251).astype(np.int64).sum())
    with running(python_script(PUBLISHER), log_path=tmp_path / "publisher.log"):
        result = subprocess.run(python_script(SUBSCRIBER), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    received = json.loads(result.stdout.strip().splitlines()[-1])
    assert received is not None, "no image arrived within 30 s"
    assert received["count"] >= 5
    assert (received["height"], received["width"], received["encoding"]) == (360, 640, "rgb8")
    assert received["checksum"] == expected
    ids = [int(i) for i in received["frame_ids"]]
    assert ids == sorted(ids), "frames arrived out of order"
