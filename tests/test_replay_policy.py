"""ibc-replay of a recorded camera stream into a real policy_node process (real DDS): the node's
setpoints equal offline Policy.act on the same frames, in the same order.

The bag is written with the recorder's own MCAP writer (DurableBagWriter) from frames the
PyBullet push world renders (push_pixels camera, 320x180, 10 Hz of sim time) together with the
sim's /clock (100 Hz), as recording a sim session would hold them. ibc-replay publishes both
with their recorded timing; the policy node runs on that clock (use_sim_time, like
`ros2 bag play --clock`), with its hardware settings otherwise: a 5 Hz timer acting on the newest
frame, so it uses at most every second frame (fewer when the CPU is busy; the replay runs at
half speed to leave time) - the offline policy gets exactly the frames whose stamps the
setpoints carry. A second run replays with --restamp into the node on wall time. The checkpoint
is a tiny pixel EBM trained here for a few steps on those frames (it checks the plumbing, not the policy's quality)."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import Vector3Stamped
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image

from ibc_core.data.episodes import DatasetWriter, Episode
from ibc_core.data.preprocess import ImageSpec, preprocess_image
from cell.recording.bag_io import DurableBagWriter, serialize, typestore
from cell.paths import share_file
from sim.block_push import PushWorld
from sim.config import load_task_config
from tests.ros_client import RosClient, wait_for
from tests.ros_processes import running
from tests.tiny_training import train_tiny_pixel_policy

pytestmark = pytest.mark.ros
BIN = Path(sys.executable).parent
FRAMES = 24                 # 2.4 s of sim time at 10 Hz
FRAME_NS = 100_000_000
CLOCK_NS = 10_000_000
START_NS = 1_000_000_000    # the sim clock's origin


def render_frames() -> list[np.ndarray]:
    """Real sim frames that change over time: the scenes of successive seeds."""
    task = load_task_config("push_pixels")
    world = PushWorld(task)
    try:
        frames = []
        for index in range(FRAMES):
            world.reset(seed=index // 4)
            world.step(0.01 * (index % 4))
            frames.append(world.render_rgb(task.render_width, task.render_height))
        return frames
    finally:
        world.close()


def header(stamp_ns: int, frame_id: str):
    T = typestore().types
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](
        sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=frame_id)


def write_bag(path: Path, frames: list[np.ndarray]) -> list[int]:
    """/clock every 10 ms and a frame every 100 ms of sim time (log time = sim time, frame just
    after its clock tick). Returns the frame stamps."""
    T = typestore().types
    writer = DurableBagWriter(path, {"/clock": "rosgraph_msgs/msg/Clock",
                                     "/camera/image_raw": "sensor_msgs/msg/Image"})
    stamps = []
    # The clock runs on 3 s past the last frame: the policy's sim-time timer must still tick
    # for the last frames when a loaded machine delivers them late.
    end_ns = START_NS + (FRAMES + 30) * FRAME_NS
    for t in range(START_NS, end_ns, CLOCK_NS):
        clock = T["rosgraph_msgs/msg/Clock"](clock=header(t, "").stamp)
        writer.write("/clock", t, serialize(clock, "rosgraph_msgs/msg/Clock"))
        index = (t - START_NS) // FRAME_NS
        if (t - START_NS) % FRAME_NS == 0 and t > START_NS and index <= FRAMES:
            frame = frames[index - 1]
            msg = T["sensor_msgs/msg/Image"](header=header(t, "sim_camera"), height=frame.shape[0],
                                             width=frame.shape[1], encoding="rgb8", is_bigendian=0,
                                             step=frame.shape[1] * 3, data=frame.reshape(-1))
            writer.write("/camera/image_raw", t + 1, serialize(msg, "sensor_msgs/msg/Image"))
            stamps.append(t)
    writer.close()
    return stamps


def train_tiny_checkpoint(root: Path, frames: list[np.ndarray]) -> Path:
    spec = ImageSpec(height=45, width=80)
    meta = {"task": "push_pixels_replay_test", "action_low": [-0.1, -0.1], "action_high": [0.1, 0.1],
            "control_hz": 5.0, "observation_keys": ["rgb"],
            "image_spec": {"height": spec.height, "width": spec.width, "crop": list(spec.crop)}}
    writer = DatasetWriter(root / "data", meta)
    rng = np.random.default_rng(0)
    for seed in range(2):
        rgb = np.stack([preprocess_image(f, spec) for f in frames[seed * 12:(seed + 1) * 12]])
        writer.add(Episode(actions=rng.uniform(-0.05, 0.05, (len(rgb), 2)).astype(np.float32),
                           observations={"rgb": rgb}, success=True, seed=seed, info={}))
    return train_tiny_pixel_policy(root / "data", root / "run")


def stamp_ns(stamp) -> int:
    return stamp.sec * 10**9 + stamp.nanosec


@pytest.mark.parametrize("timing", ["sim_clock", "restamp"])
def test_replayed_image_stream_gives_the_offline_policy_actions(tmp_path, timing):
    """sim_clock: the recorded /clock drives the node (use_sim_time, like `ros2 bag play --clock`).
    restamp: the node runs on wall time, as on the robot, and `ibc-replay --restamp` moves the
    frames' stamps to now (without it every recorded frame would be refused as stale)."""
    from ibc_core.policy import Policy

    frames = render_frames()
    bag = tmp_path / "session"
    stamps = write_bag(bag, frames)
    checkpoint = train_tiny_checkpoint(tmp_path, frames)

    restamp = timing == "restamp"
    rate = 1.0 if restamp else 0.5   # restamp: 10 Hz frames on the 5 Hz wall-time timer
    argv = [str(BIN / "policy_node"), "--ros-args", "--params-file", str(share_file("config", "policy.yaml")),
            "-p", f"checkpoint:={checkpoint}", "-p", "device:=cpu", "-p", f"use_sim_time:={str(not restamp).lower()}",
            # 0.5 s on the robot; a loaded CI machine delivered frames 0.7 s late (in sim time)
            # and the node rightly refused them. Staleness is tests/fault's subject; here every
            # frame the node picks must be acted on.
            "-p", "max_frame_age:=5.0", "-p", f"image_width:={frames[0].shape[1]}",
            "-p", f"image_height:={frames[0].shape[0]}"]
    with RosClient("replay_policy_test") as client, running(argv, tmp_path / "policy.log"):
        setpoints = client.collect(Vector3Stamped, "setpoint_delta")
        seen = client.collect(Image, "camera/image_raw", 100)   # restamp: maps new stamps to frames
        client.collect(Clock, "/clock", 100)   # so both replayed topics count this client and the node
        # The policy's first setpoint must reach this list: match before the replay starts.
        wait_for(lambda: client.publishers_matched("setpoint_delta") > 0, 120, "the policy node's setpoint publisher")
        replay = subprocess.run([str(BIN / "ibc-replay"), str(bag), "--rate", str(rate), "--wait-subscribers", "120",
                                 "--subscribers", "2",   # the node's, not just this client's
                                 *(["--restamp"] if restamp else [])], capture_output=True, text=True, timeout=300)
        assert replay.returncode == 0, replay.stderr[-3000:]
        recorded_stamp = recorded_stamp_of(seen, frames, stamps) if restamp else (lambda ns: ns)
        last = stamps[-3]
        # The policy's last answers may still be computing when the replay ends.
        try:
            wait_for(lambda: setpoints and recorded_stamp(stamp_ns(setpoints[-1].header.stamp)) >= last, 60,
                     "setpoints for the last frames")
        except TimeoutError as exc:
            acted = [recorded_stamp(stamp_ns(s.header.stamp)) for s in setpoints]
            raise AssertionError(f"{exc}: {len(acted)} setpoints, stamps {acted[-3:]} of frames ending "
                                 f"{stamps[-3:]}\n{(tmp_path / 'policy.log').read_text()[-2000:]}") from exc
    log = (tmp_path / "policy.log").read_text()
    acted = [recorded_stamp(stamp_ns(s.header.stamp)) for s in setpoints]
    assert acted == sorted(set(acted)) and set(acted) <= set(stamps), "each setpoint carries a new frame's stamp"
    # A 5 Hz policy on a 10 Hz camera acts on at most every second frame; enough of them to
    # exercise the frame history (2 frames) on changing scenes.
    assert 4 <= len(acted) <= len(stamps) // 2 + 1, (len(acted), len(stamps), log[-2000:])

    frame_at = dict(zip(stamps, frames))
    offline = Policy.load(checkpoint, device="cpu")
    expected = np.array([offline.act({"rgb": frame_at[stamp]}) for stamp in acted])
    got = np.array([[s.vector.x, s.vector.y] for s in setpoints])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # The one setpoint_delta builder (ibc_ros.nodes.common): the arm base frame, as teleop's.
    assert {s.header.frame_id for s in setpoints} == {"link_base"}


def recorded_stamp_of(seen: list, frames: list[np.ndarray], stamps: list[int]):
    """--restamp moved every stamp by the same offset (rate 1): find it from a replayed frame this
    test received, identified by its pixels; returns new stamp -> recorded stamp."""
    wait_for(lambda: seen, 30, "a replayed frame")
    msg = seen[0]
    index = next(i for i, frame in enumerate(frames) if bytes(msg.data) == frame.tobytes())
    offset = stamp_ns(msg.header.stamp) - stamps[index]
    assert abs(offset - time.time_ns()) < 600 * 10**9, "--restamp stamps are on this machine's wall time"
    return lambda ns: ns - offset
