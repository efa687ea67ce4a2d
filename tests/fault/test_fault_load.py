"""Load tests (slow; they print the numbers docs/RELIABILITY.md reports). Real processes, real DDS.

- Camera flood: 640x360 rgb8 frames at 60 Hz into policy_node (a real checkpoint) for LOAD_S
  seconds: the policy keeps its rate, uses each frame at most once and always a newer one (keep-
  last-1, no backlog), and its resident memory stays flat.
- Controller under CPU load: controller_node's 100 Hz joint_command with two busy-loop processes
  occupying both cores: the stamps' interval statistics (jitter) are printed; the joint step
  limit holds whatever the timing.
Timing is reported, never asserted (COMMON rules); memory growth and message order are.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import Vector3Stamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32

from cell.control import load_controller_config
from tests.fault.conftest import node_argv
from tests.fault.test_fault_camera_policy import seconds
from tests.ros_client import RosClient, wait_for
from tests.ros_processes import python_script, running

pytestmark = [pytest.mark.ros, pytest.mark.slow]
LOAD_S = 40.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


# The flooding camera is its own process, as a real camera node is: in the pytest process (which
# also trained the tiny checkpoint) the same publisher delivered the policy only ~1.3 frames/s.
CAMERA_FLOOD = python_script("""
    import sys, time
    import numpy as np
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from ibc_ros.nodes.common import image_msg

    rclpy.init()
    node = rclpy.create_node("flood_camera")
    pub = node.create_publisher(Image, "camera/image_raw", qos_profile_sensor_data)
    while pub.get_subscription_count() == 0:
        time.sleep(0.05)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (360, 640, 3), dtype=np.uint8) for _ in range(8)]
    hz, sent, start = float(sys.argv[1]), 0, time.monotonic()
    try:
        while True:
            pub.publish(image_msg(frames[sent % len(frames)], node.get_clock().now().to_msg()))
            sent += 1
            time.sleep(max(0.0, start + sent / hz - time.monotonic()))
    except KeyboardInterrupt:
        print(f"sent {sent} frames in {time.monotonic() - start:.3f} s", flush=True)
""")


def test_camera_flood_at_60hz_keeps_the_policy_rate_newest_frame_and_memory(tiny_rgb_checkpoint, tmp_path):
    policy = node_argv("policy_node", "policy.yaml", f"checkpoint:={tiny_rgb_checkpoint}", "device:=cpu",
                       "torch_threads:=1")
    camera_log = tmp_path / "camera.log"
    with RosClient("flood_test") as client, running(policy, tmp_path / "policy.log") as proc:
        setpoints = client.collect(Vector3Stamped, "setpoint_delta", 1000)
        latency = client.collect(Float32, "policy/latency", 1000)
        inference = client.collect(Float32, "policy/inference_time", 1000)
        with running(CAMERA_FLOOD + ["60"], camera_log):   # starts once the policy subscribed
            wait_for(lambda: len(setpoints) >= 5, 120, "policy acting")
            started, first_count = time.monotonic(), len(setpoints)
            memory = []
            while time.monotonic() - started < LOAD_S:
                memory.append(rss_mb(proc.pid))
                time.sleep(1.0)
            elapsed, count = time.monotonic() - started, len(setpoints) - first_count
        assert proc.poll() is None
    sent, camera_s = re.search(r"sent (\d+) frames in ([\d.]+) s", camera_log.read_text()).groups()
    frames, offered_hz = int(sent), int(sent) / float(camera_s)
    rate = count / elapsed
    stamps = np.array([seconds(s.header.stamp) for s in setpoints])
    lag = np.array([l.data for l in latency]) - np.array([i.data for i in inference])[:len(latency)]
    growth = memory[-1] - memory[len(memory) // 4]
    print(f"\nflood: {frames} frames sent ({offered_hz:.1f} Hz offered); over {elapsed:.0f} s, "
          f"{count} setpoints = {rate:.2f} Hz; latency median {np.median([l.data for l in latency]) * 1e3:.0f} ms, "
          f"p95 {np.percentile([l.data for l in latency], 95) * 1e3:.0f} ms; frame age at inference start "
          f"median {np.median(lag) * 1e3:.0f} ms; "
          f"inference median {np.median([i.data for i in inference]) * 1e3:.0f} ms; "
          f"policy RSS {memory[0]:.0f} -> {memory[-1]:.0f} MB (growth over the last 3/4: {growth:+.1f} MB)")
    assert np.all(np.diff(stamps) > 0)  # each frame used at most once, always a newer one
    assert count > 0
    assert growth < 20.0, f"policy memory grew {growth:.1f} MB under the flood"


def test_controller_rate_and_jitter_with_both_cores_busy(tmp_path):
    config = load_controller_config()
    burn = [sys.executable, "-c", "while True: pass"]
    burners = [subprocess.Popen(burn) for _ in range(2)]
    try:
        with RosClient("jitter_test") as client, \
                running(node_argv("controller_node", "controller_node.yaml"), tmp_path / "controller.log"):
            commands = client.collect(JointState, "joint_command", 10000)
            wait_for(lambda: len(commands) > 50, 60, "controller running")
            del commands[:]
            time.sleep(LOAD_S / 2)
            received = list(commands)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    stamps = np.array([seconds(c.header.stamp) for c in received])
    intervals = np.diff(stamps) * 1e3
    q = np.array([c.position for c in received])
    print(f"\ncontroller with 2 busy loops: {len(received)} commands in {stamps[-1] - stamps[0]:.1f} s = "
          f"{(len(received) - 1) / (stamps[-1] - stamps[0]):.1f} Hz; interval ms mean {intervals.mean():.2f}, "
          f"std {intervals.std():.2f}, p50 {np.percentile(intervals, 50):.2f}, p99 {np.percentile(intervals, 99):.2f}, "
          f"max {intervals.max():.1f}; late (>15 ms) {np.mean(intervals > 15) * 100:.1f} %")
    assert np.abs(np.diff(q, axis=0)).max() <= config.max_joint_step + 1e-9
