"""recorder_node over real DDS: services drive episodes, a SIGKILLed recorder loses nothing it
had flushed (recovered by the next start), and the bags convert to exactly what was sent - the
killed episode's recovered part as a failure (`ibc-data from-bags`)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ibc_core.data.episodes import iter_episodes
from ibc_core.data.preprocess import ImageSpec
from cell.recording.bag_io import BagReader, deserialize, find_bags
from cell.recording.bag_to_dataset import convert_bags
from tests.ros_processes import python_script, running

pytestmark = pytest.mark.ros
NODE = str(Path(sys.executable).parent / "recorder_node")

# Publishes 32x18 frames at 30 Hz and setpoints at 5 Hz (stamped with the newest frame),
# drives three episodes through the recorder's services (kept, discarded, left running) and
# prints what it sent in each.
DRIVER = """
    import json, time, numpy as np, rclpy
    from geometry_msgs.msg import Vector3Stamped
    from sensor_msgs.msg import Image
    from rclpy.duration import Duration
    from std_msgs.msg import String
    from std_srvs.srv import Trigger
    rclpy.init()
    node = rclpy.create_node("record_test_driver")
    images = node.create_publisher(Image, "camera/image_raw", 10)
    setpoints = node.create_publisher(Vector3Stamped, "setpoint_delta", 10)
    clients = {n: node.create_client(Trigger, "recorder/" + n) for n in ("start", "stop", "discard", "mark_success")}
    for c in clients.values():
        assert c.wait_for_service(timeout_sec=30), "recorder services missing"
    while images.get_subscription_count() == 0 or setpoints.get_subscription_count() == 0:
        rclpy.spin_once(node, timeout_sec=0.05)
    rng = np.random.default_rng(0)
    def call(name):
        future = clients[name].call_async(Trigger.Request())
        rclpy.spin_until_future_complete(node, future, timeout_sec=10)
        assert future.result().success, (name, future.result().message)
    def stream(seconds):
        sent, last_stamp, frame = [], None, 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            msg = Image(height=18, width=32, encoding="rgb8", step=96,
                        data=np.full(18 * 32 * 3, frame % 256, np.uint8).tobytes())
            msg.header.stamp = node.get_clock().now().to_msg()
            images.publish(msg)
            if frame % 6 == 5:
                sp = Vector3Stamped()
                sp.header.stamp = msg.header.stamp
                sp.vector.x, sp.vector.y = [float(v) for v in rng.uniform(-0.05, 0.05, 2)]
                setpoints.publish(sp)
                sent.append([sp.vector.x, sp.vector.y, frame % 256])
            frame += 1
            time.sleep(1 / 30)
        # The episode must not end before the recorder holds every setpoint: a reliable publisher
        # knows when all readers acknowledged; the recorder's executor takes ready subscriptions
        # before the service request that follows. (Frames are best effort: a short grace.)
        assert setpoints.wait_for_all_acked(Duration(seconds=20)), "recorder never acknowledged the setpoints"
        time.sleep(0.3)
        return sent
    out = {}
    call("start"); out["kept"] = stream(1.2); call("mark_success"); call("stop")
    call("start"); out["discarded"] = stream(0.6); call("discard")
    call("start"); out["killed"] = stream(1.2)
    # Everything above is on disk once two successive 1 Hz status reports show nothing queued
    # and nothing unflushed (between them the recorder's executor was idle at least once).
    idle = []
    node.create_subscription(String, "recorder/status", lambda m: idle.append(
        json.loads(m.data)["pending"] == 0 and json.loads(m.data)["unflushed"] == 0), 10)
    deadline = time.monotonic() + 30
    while idle[-2:] != [True, True]:
        assert time.monotonic() < deadline, "recorder never reported its queue flushed"
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps(out), flush=True)
"""


CALL_START = """
    import rclpy
    from std_srvs.srv import Trigger
    rclpy.init()
    node = rclpy.create_node("record_test_start")
    client = node.create_client(Trigger, "recorder/start")
    assert client.wait_for_service(timeout_sec=30), "recorder/start missing"
    future = client.call_async(Trigger.Request())
    rclpy.spin_until_future_complete(node, future, timeout_sec=20)
    assert future.result().success, future.result().message
"""


def wait_for_line(path: Path, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {path}:\n{path.read_text() if path.exists() else ''}")


def test_recorder_node_services_sigkill_and_conversion(tmp_path):
    out = tmp_path / "demos"
    args = [NODE, "--ros-args", "-p", f"output_dir:={out}", "-p", "flush_interval_s:=0.2"]
    log = tmp_path / "recorder.log"
    with running(args, log) as recorder:
        wait_for_line(log, "recording")
        driver = subprocess.run(python_script(DRIVER), capture_output=True, text=True, timeout=90)
        assert driver.returncode == 0, driver.stderr
        sent = json.loads(driver.stdout.strip().splitlines()[-1])
        os.killpg(recorder.pid, signal.SIGKILL)  # episode 2 is still being recorded
        recorder.wait()

    finished, unfinished = find_bags([out])
    assert [b.name for b in finished] == ["episode_000000", "episode_000001"]
    assert [b.name for b in unfinished] == ["episode_000002"]

    restart_log = tmp_path / "restart.log"
    with running(args, restart_log) as recorder:
        wait_for_line(restart_log, "recovered unfinished bag")
        started = subprocess.run(python_script(CALL_START), capture_output=True, text=True, timeout=60)
        assert started.returncode == 0, started.stderr
        wait_for_line(restart_log, "start: episode 3")
    # running() ends with SIGINT (Ctrl-C): the episode that was recording is stopped and kept as
    # a failure, cleanly - the node's event publisher is already shut down by then.
    assert recorder.returncode == 0 and "Traceback" not in restart_log.read_text(), restart_log.read_text()
    finished, unfinished = find_bags([out])
    assert len(finished) == 4 and unfinished == []
    with BagReader(out / "episode_000003") as reader:
        events = [deserialize(m.data, m.msgtype).data for m in reader.messages(["/recorder/events"])]
    assert [json.loads(e)["event"] for e in events] == ["start", "stop"]
    with BagReader(out / "episode_000002") as reader:
        got = [deserialize(m.data, m.msgtype).vector for m in reader.messages(["/setpoint_delta"])]
    assert [[v.x, v.y] for v in got] == [s[:2] for s in sent["killed"]], "flushed setpoints lost by SIGKILL"

    # The recovered part of the killed episode converts as a failure: `ibc-data from-bags`, the
    # command an operator runs, over the whole folder.
    result = subprocess.run([str(Path(sys.executable).parent / "ibc-data"), "from-bags", str(out),
                             "--out", str(tmp_path / "data"), "--height", "9", "--width", "16"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "episodes found: discarded 1, failure 1, success 1, unfinished 1" in result.stdout, result.stdout
    assert "1 unfinished written as failures" in result.stdout, result.stdout
    kept, killed = list(iter_episodes(tmp_path / "data"))   # episode 3 holds no setpoint: empty
    assert kept.success and not killed.success
    assert (kept.info["outcome"], killed.info["outcome"]) == ("success", "unfinished")
    np.testing.assert_array_equal(kept.actions, np.array([s[:2] for s in sent["kept"]], np.float32))
    np.testing.assert_array_equal(killed.actions, np.array([s[:2] for s in sent["killed"]], np.float32))
    # Each step's image is the frame whose stamp the setpoint carried (frames are uniform grey).
    assert kept.observations["rgb"][:, 0, 0, 0].tolist() == [s[2] for s in sent["kept"]]
    assert killed.observations["rgb"][:, 0, 0, 0].tolist() == [s[2] for s in sent["killed"]]

    # Offered with a flag the other way: --skip-unfinished keeps only the finished episode.
    report = convert_bags([out], tmp_path / "finished_only", ImageSpec(9, 16), "push_pixels_real",
                          include_unfinished=False)
    assert report.outcomes == {"success": 1, "discarded": 1, "unfinished": 1, "failure": 1}
    assert [e.info["outcome"] for e in iter_episodes(tmp_path / "finished_only")] == ["success"]
