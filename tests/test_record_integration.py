"""The record_demos stack in simulation, end to end, through real processes and real DDS:
`ibc-ros launch record_demos sim:=true` starts sim (operator mode: no episode loop, no policy
to wait for; sim/reset puts up the next scene), teleop (no display: pointer and keys arrive on
teleop/pointer and teleop/key), controller and recorder. The test plays the operator with the
scripted push oracle (sim.oracles.PushOracle) on the sim's observation/state: it points the
teleop at commanded setpoint + oracle action, presses r / g / s, and resets the scene between
episodes. The MCAP bags are then converted (`ibc-data from-bags`) and a policy trains on them:
the dataset holds exactly the setpoints teleop sent. Finally the recorded setpoints are replayed
into a fresh controller + sim: the block ends where the recorded episode left it.

Fast variant: 2 short episodes. Slow variant: 20 episodes of the task's full horizon."""
from __future__ import annotations

import math
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import PointStamped, Vector3Stamped
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Bool, Float32MultiArray, String
from std_srvs.srv import Trigger

from ibc_core.data.episodes import iter_episodes, read_meta
from cell.control.config import load_controller_config
from cell.control.envelope import SafetyEnvelope
from cell.recording.bag_io import BagReader, deserialize, find_bags
from cell.recording.episodes import decode_event
from sim.config import load_task_config
from sim.oracles import PushOracle
from tests.ros_client import RosClient, wait_for
from tests.tiny_training import train_tiny_pixel_policy
from tests.ros_processes import stop
from tests.test_ros_bringup import alive, bringup, child_pids

pytestmark = pytest.mark.ros
TASK = "push_pixels"


def record_demos(args: list[str], log: Path) -> subprocess.Popen:
    return bringup(["sim:=true", f"task:={TASK}", *args], log, stack="record_demos")


def stop_stack(proc: subprocess.Popen, log: Path) -> None:
    stop(proc, timeout=60)
    assert not any(alive(pid) for pid in child_pids(log)), log.read_text()[-3000:]


def stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class Operator:
    """The test as the human at the teleop: watches observation/state, points, presses keys."""
    WAYPOINT_TOLERANCE = 0.001   # the oracle's (m): table coordinates are exact on the topic

    def __init__(self, client: RosClient, start_xy: np.ndarray, _log: Path | None = None) -> None:
        self.client, self.start_xy = client, start_xy
        self.states = client.collect(Float32MultiArray, "observation/state")
        self.sent = client.collect(Vector3Stamped, "setpoint_delta")
        self.events = client.collect(String, "recorder/events")
        self.success = client.collect(Bool, "task/success")
        self.pointer = client.publisher(PointStamped, "teleop/pointer")
        self.keys = client.publisher(String, "teleop/key")
        self._target: np.ndarray | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # Teleop releases the pointer after pointer_timeout_s of wall time without events; the
        # lock-step sim may run slower than real time, so the pointer is repeated at 10 Hz.
        self._thread = threading.Thread(target=self._keep_pointing, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _keep_pointing(self) -> None:
        while not self._stop.wait(0.1):
            with self._lock:
                self._publish_pointer()

    def _publish_pointer(self) -> None:
        # Under the lock: a release is never overtaken by the previous target (one writer, in order).
        msg = PointStamped()
        msg.header.frame_id = "table"
        target = self._target
        msg.point.x, msg.point.y = (float(v) for v in target) if target is not None else (math.nan, math.nan)
        self.pointer.publish(msg)

    def point_at(self, target: np.ndarray | None, _commanded: np.ndarray | None = None) -> None:
        with self._lock:
            self._target = None if target is None else np.asarray(target, dtype=float)
            self._publish_pointer()

    def press(self, key: str, event: str) -> None:
        count = sum(decode_event(e.data)["event"] == event for e in self.events)
        self._send_key(key)
        wait_for(lambda: sum(decode_event(e.data)["event"] == event for e in self.events) > count, 30,
                 f"recorder event {event!r} after key {key!r}")

    def _send_key(self, key: str) -> None:
        self.keys.publish(String(data=key))

    def wait_frames(self, count: int) -> None:
        seen = len(self.states)
        wait_for(lambda: len(self.states) >= seen + count, 60, f"{count} new sim frames")

    def wait_until_teleop_is_quiet(self) -> None:
        """After a release, a setpoint teleop published just before it may still be in flight
        (seen under load): wait until three frames pass with no new setpoint."""
        while True:
            count = len(self.sent)
            self.wait_frames(3)
            if len(self.sent) == count:
                return

    def demonstrate(self, oracle: PushOracle, max_steps: int) -> list[Vector3Stamped]:
        """One recorded episode: r, oracle through the pointer until success or max_steps teleop
        setpoints, release, g (if successful), s. Returns the setpoints teleop sent meanwhile."""
        oracle.reset()
        self.point_at(None)
        self.wait_frames(2)
        self.press("r", "start")
        self.wait_frames(2)  # teleop holds a frame recorded in this episode: every step gets an image
        first = len(self.sent)
        commanded = self.start_xy.copy()
        success_seen = len(self.success)
        while len(self.sent) - first < max_steps:
            state = np.array(self.states[-1].data, dtype=np.float64)
            state[5:7] = commanded  # the effector target is what teleop has commanded so far
            self.point_at(commanded + oracle.act({"state": state}), commanded)
            count = len(self.sent)
            wait_for(lambda: len(self.sent) > count, 60, "teleop setpoint")
            commanded = self.start_xy + np.sum([[m.vector.x, m.vector.y] for m in self.sent[first:]], axis=0)
            if any(m.data for m in self.success[success_seen:]):
                break
        self.point_at(None)
        self.wait_until_teleop_is_quiet()  # released: no setpoint is in flight when the episode stops
        steps = list(self.sent[first:])
        succeeded = any(m.data for m in self.success[success_seen:])
        if succeeded:
            self.press("g", "success")
        self.press("s", "stop")
        assert len(self.sent) == first + len(steps), "teleop kept publishing after the release"
        return steps

    def _request_next_scene(self) -> None:
        assert self.client.call(Trigger, "sim/reset", Trigger.Request()).success

    def next_scene(self) -> None:
        seen = len(self.states)
        self._request_next_scene()
        wait_for(lambda: len(self.states) > seen + 2, 60, "frames of the next scene")


def run_demonstrations(tmp_path: Path, episodes: int, max_steps: int,
                       operator_class: type = Operator, out: Path | None = None) -> tuple[Path, list, list]:
    """Record `episodes` demonstrations; returns (bag dir, setpoints per episode, final states).
    `operator_class(client, start_xy, log)`: the operator's seat (topics, or the console page)."""
    out, log = out or tmp_path / "demos", tmp_path / "record_demos.log"
    config = load_controller_config()
    start_xy = SafetyEnvelope(config).clamp_target(config.start_xy)[:2]
    task = load_task_config(TASK)
    proc = record_demos([f"output_dir:={out}"], log)
    sent_per_episode, final_states = [], []
    try:
        with RosClient("operator") as client:
            wait_for(lambda: "scene of seed 1000000 ready" in log.read_text(), 120, "the first scene")
            operator = operator_class(client, start_xy, log)
            try:
                wait_for(lambda: operator.keys.get_subscription_count() > 0, 60, "teleop")
                wait_for(lambda: "recording [" in log.read_text(), 60, "recorder")
                # Volatile topics lose what is published before this client's subscription has
                # matched the publisher (a missed 'start' event failed the 20-episode run once).
                watched = ("recorder/events", "setpoint_delta", "observation/state", "task/success")
                wait_for(lambda: all(client.publishers_matched(t) > 0 for t in watched), 60,
                         f"publishers on {watched}")
                for episode in range(episodes):
                    if episode:
                        operator.next_scene()
                    oracle = PushOracle(task.control_hz, len(task.scene.targets_x), task.success_tolerance,
                                        operator.WAYPOINT_TOLERANCE)
                    sent_per_episode.append(operator.demonstrate(oracle, max_steps))
                    final_states.append(np.array(operator.states[-1].data))
            finally:
                operator.close()
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        stop_stack(proc, log)
    text = log.read_text()
    assert "policy/reset" not in text, "the record_demos sim must not wait for a policy"
    assert "lockstep: no joint_command" not in text, text[-3000:]
    return out, sent_per_episode, final_states


def check_dataset_and_train(tmp_path: Path, out: Path, sent_per_episode: list, successful_only: bool) -> None:
    finished, unfinished = find_bags([out])
    assert len(finished) == len(sent_per_episode) and unfinished == []
    dataset = tmp_path / "dataset"
    converted = subprocess.run([str(Path(sys.executable).parent / "ibc-data"), "from-bags", str(out),
                                "--out", str(dataset)], capture_output=True, text=True, timeout=600)
    assert converted.returncode == 0, converted.stderr[-3000:]
    episodes = list(iter_episodes(dataset))
    assert len(episodes) == len(sent_per_episode)
    for episode, sent in zip(episodes, sent_per_episode):
        expected = np.array([[m.vector.x, m.vector.y] for m in sent], dtype=np.float32)
        np.testing.assert_array_equal(episode.actions, expected)  # exactly what teleop sent
        assert episode.observations["rgb"].shape[0] == len(sent)
    assert read_meta(dataset)["observation_keys"] == ["rgb"]
    checkpoint = train_tiny_pixel_policy(dataset, tmp_path / "run", 4,
                                         f"data.successful_only={str(successful_only).lower()}")
    from ibc_core.policy import Policy
    policy = Policy.load(checkpoint, device="cpu")
    assert policy.observation_keys == ("rgb",)
    action = policy.act({"rgb": np.zeros((180, 320, 3), np.uint8)})
    assert action.shape == (2,) and np.all(np.abs(action) <= 0.1 + 1e-6)


def replay_setpoints_into_sim(tmp_path: Path, bag: Path, recorded_final_state: np.ndarray) -> float:
    """A fresh record_demos stack (same first scene); the bag's setpoints are published again with
    their recorded spacing in sim time (paced on /clock, stamped with the current sim time: the
    controller drops setpoints stamped before its reset or over 1 s old). Returns the distance
    between the block's end position and the recorded one."""
    with BagReader(bag) as reader:
        topic = next(t for t in reader.topics if t.endswith("setpoint_delta"))
        recorded = [(m.log_time_ns, deserialize(m.data, m.msgtype).vector) for m in reader.messages([topic])]
    log = tmp_path / "replay_stack.log"
    proc = record_demos([f"output_dir:={tmp_path / 'replay_demos'}"], log)
    try:
        with RosClient("replayer") as client:
            states = client.collect(Float32MultiArray, "observation/state")
            clock = client.collect(Clock, "/clock", 10)
            publisher = client.publisher(Vector3Stamped, "setpoint_delta")
            wait_for(lambda: "scene of seed 1000000 ready" in log.read_text(), 120, "the first scene")
            wait_for(lambda: publisher.get_subscription_count() >= 2, 60, "controller + recorder subscriptions")
            sim_now = lambda: stamp_ns(clock[-1].clock)  # noqa: E731
            wait_for(lambda: clock, 30, "/clock")
            origin = sim_now() - recorded[0][0]
            for log_time, vector in recorded:
                wait_for(lambda: sim_now() >= origin + log_time, 60, "sim time of the next setpoint")
                msg = Vector3Stamped()
                msg.header.stamp = clock[-1].clock
                msg.vector.x, msg.vector.y = vector.x, vector.y
                publisher.publish(msg)
            settle = sim_now() + 2_000_000_000  # let the arm and block come to rest (2 s sim time)
            wait_for(lambda: sim_now() >= settle, 120, "2 s of sim time after the last setpoint")
            final = np.array(states[-1].data)
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        stop_stack(proc, log)
    return float(np.linalg.norm(final[:2] - recorded_final_state[:2]))


def test_record_demos_sim_teleop_oracle_two_episodes_convert_train_and_replay(tmp_path):
    out, sent, finals = run_demonstrations(tmp_path, episodes=2, max_steps=12)
    assert all(len(s) >= 6 for s in sent), [len(s) for s in sent]
    # Cut short, the episodes are (honestly) not successful: train on all of them.
    check_dataset_and_train(tmp_path, out, sent, successful_only=False)
    # The first episode's block moved; replaying its setpoints moves it to the same place.
    first_bag = sorted(find_bags([out])[0])[0]
    error = replay_setpoints_into_sim(tmp_path, first_bag, finals[0])
    print(f"replayed episode: block ends {error * 1000:.1f} mm from where the recording left it")
    assert error < 0.01


@pytest.mark.slow
def test_record_demos_sim_twenty_oracle_episodes_convert_and_train(tmp_path):
    task = load_task_config(TASK)
    out, sent, _ = run_demonstrations(tmp_path, episodes=20, max_steps=task.max_steps)
    check_dataset_and_train(tmp_path, out, sent, successful_only=True)
