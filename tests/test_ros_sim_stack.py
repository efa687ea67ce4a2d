"""The simulated stack through real processes and real DDS, started by the pip bringup exactly as
`./run.sh demo` does (`ibc-ros launch real_push sim:=true ...`): sim node (clock, camera, joint
states, episode supervisor) -> policy node (a real ibc_core checkpoint) -> controller node ->
sim node. The fast tests use a tiny checkpoint trained here for a few steps (it checks the loop
is closed, not that the policy is good); the slow test compares closed-loop success through ROS
with in-process `ibc-eval` on the same trained checkpoint and seeds."""
from __future__ import annotations

import json
import math
import re
import os
import signal
import time
import sys
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import Vector3Stamped
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Float32
from std_srvs.srv import Trigger

from cell.control import load_controller_config
from cell.images import image_to_rgb
from ibc_cli import data, evaluate
from ibc_core.policy import Policy
from ibc_ros.nodes.common import stamp_ns
from ibc_ros.nodes.sim_node import START_TIME_NS
from sim.config import FIXTURE_TASKS, load_task_config
from sim.env import PushEnv
from tests.ros_client import RosClient, quiet_since, wait_for
from tests.test_ros_bringup import alive, bringup, child_pids
from tests.tiny_training import train_tiny_pixel_policy

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def tiny_pixel_checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_pixels")
    dataset, run = root / "data", root / "run"
    assert data.main(["generate", "--task", "push_pixels", "--episodes", "2", "--out", str(dataset)]) == 0
    return train_tiny_pixel_policy(dataset, run)


def run_to_the_end(args: list[str], log: Path) -> int:
    """The stack's exit status once it has run its episodes (killed if still up after 240 s)."""
    proc = bringup(args, log)
    try:
        return proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_demo_stack_closes_the_loop_and_exits_after_the_episodes(tiny_pixel_checkpoint, tmp_path):
    summary, log = tmp_path / "summary.json", tmp_path / "stack.log"
    with RosClient("stack_observer") as client:
        setpoints = client.collect(Vector3Stamped, "setpoint_delta")
        energy = client.collect(Image, "policy/energy_image", 5)
        success = client.collect(Bool, "task/success")
        distance = client.collect(Float32, "task/distance")
        code = run_to_the_end(["sim:=true", "episodes:=2", "max_steps:=10", f"policy:={tiny_pixel_checkpoint}",
                               "device:=cpu", f"summary:={summary}"], log)
        # The stack runs near real time: this client may still be taking its backlog.
        quiet_since(success, 1.0, 30, "the task status backlog")
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "episode 1/2 (seed 1000000)" in text and "episode 2/2 (seed 1000001)" in text
    assert "done: " in text and "sim finished: stopping the stack" in text and "interrupted" not in text
    result = json.loads(summary.read_text())
    assert result["episodes"] == 2 and [r["seed"] for r in result["results"]] == [1000000, 1000001]
    # The policy acted on the sim's frames: setpoints carry sim-clock image stamps, inside the
    # checkpoint's action bounds, and the energy view was published.
    assert len(setpoints) >= 4
    assert all(abs(s.vector.x) <= 0.1 + 1e-6 and abs(s.vector.y) <= 0.1 + 1e-6 for s in setpoints)
    assert all(s.header.stamp.sec < 1000 for s in setpoints)  # sim time starts at 1 s, not the epoch
    assert energy and energy[-1].encoding == "rgb8"
    # task status at 10 Hz sim time over 2 x 10 policy periods of 0.2 s: ~40 messages each (the
    # first ones can go before this client has matched the sim's publishers).
    assert len(success) >= 10 and len(distance) >= 10
    assert not any(m.data for m in success) or any(r["success"] for r in result["results"])
    assert all(0.0 <= m.data < 1.5 for m in distance)
    assert not any(alive(pid) for pid in child_pids(log))


@pytest.mark.parametrize("task", FIXTURE_TASKS)
def test_each_real_cell_twin_runs_an_episode_through_the_stack(task, tiny_pixel_checkpoint, tmp_path):
    """Issue #23: `real_push sim:=true task:=<twin>` runs the twin of each of the paper's real-cell
    tasks through DDS: the sim node renders it, the policy acts on its frames, the controller moves
    the simulated arm, and task/score carries the task's partial credit. The policy is the tiny
    push_pixels one (same image input; any_task:=true), so the loop is checked, not the skill."""
    summary, log = tmp_path / "summary.json", tmp_path / "stack.log"
    with RosClient("twin_observer") as client:
        setpoints = client.collect(Vector3Stamped, "setpoint_delta")
        score = client.collect(Float32, "task/score")
        code = run_to_the_end(["sim:=true", f"task:={task}", "episodes:=1", "max_steps:=20", f"policy:={tiny_pixel_checkpoint}",
                               "any_task:=true", "device:=cpu", f"summary:={summary}"], log)
        quiet_since(score, 1.0, 30, "the task status backlog")
    text = log.read_text()
    assert code == 0, text[-3000:]
    result = json.loads(summary.read_text())
    assert result["task"] == task and result["episodes"] == 1 and result["results"][0]["steps"] == 20
    assert f"task {task}" in text and "score 0" in text
    # (the first messages can go before this client has matched the stack's publishers)
    assert len(setpoints) >= 4 and len(score) >= 10
    # 4 s of a barely trained policy's centimetre steps put no block where it belongs: the score says so.
    assert all(m.data == 0.0 for m in score) and result["mean_score"] == 0.0


def test_a_twin_through_ros_is_the_in_process_episode_bit_for_bit(tmp_path):
    """The sim node renders a twin's scene as PushEnv does, the policy node acts as the Policy
    API does and the controller node moves the arm as PushEnv's controller does: one
    push_multimodal episode through DDS, run again in-process from the same seed on the stack's
    clock (PushEnv.reset's clock_origin_ns), gives the same camera frames bit for bit and the
    same setpoint deltas. The shipped push_multimodal policy pushes a block from step ~15 on: on
    times from 0 instead, t differs in its last bits, the contact amplifies that, and the frames
    part at step 17 (docs/RESULTS.md: why an episode through ROS can end differently from
    ibc-eval's for the same seed)."""
    task, seed, steps, checkpoint = "push_multimodal", 1_000_008, 25, Path("policies/push_multimodal.pt")
    log = tmp_path / "stack.log"
    with RosClient("twin_replayer") as client:
        frames = client.collect(Image, "camera/image_raw", qos_profile_sensor_data)
        deltas = client.collect(Vector3Stamped, "setpoint_delta", 200)
        code = run_to_the_end(["sim:=true", f"task:={task}", "episodes:=1", f"seed:={seed}", f"max_steps:={steps}",
                               f"policy:={checkpoint}", "device:=cpu", "console:=false"], log)
        quiet_since(deltas, 1.0, 30, "the setpoint backlog")
    assert code == 0, log.read_text()[-3000:]
    # The sim clock starts at START_TIME_NS; the episode's reset takes two ticks before its first frame.
    period_ns = round(1e9 / load_task_config(task).control_hz)
    origin = START_TIME_NS + 2 * round(load_controller_config().period_s * 1e9)
    through_ros = {stamp_ns(m.header.stamp): image_to_rgb(m) for m in frames}   # (a re-sent frame: same stamp)
    sent = {stamp_ns(m.header.stamp): np.array([m.vector.x, m.vector.y]) for m in deltas}
    assert all((stamp - origin) % period_ns == 0 for stamp in [*through_ros, *sent])
    env, policy = PushEnv(load_task_config(task)), Policy.load(checkpoint, device="cpu")
    observation = env.reset(seed, clock_origin_ns=origin)
    policy.reset()
    compared = acted = 0
    for step in range(steps):
        stamp = origin + step * period_ns
        action = policy.act(observation)
        if stamp in through_ros:
            differ = np.count_nonzero(through_ros[stamp] != observation["rgb"])
            assert differ == 0, f"frame of step {step}: {differ} values differ"
            compared += 1
        if stamp in sent:
            assert np.array_equal(sent[stamp], action.astype(np.float64)), f"action of step {step}"
            acted += 1
        observation, _done, _info = env.step(action)
    # (best-effort frames and the first messages before this client matched can be missed)
    assert compared >= steps - 8 and acted >= steps - 8, (compared, acted)
    assert np.abs(env.world.joint_positions() - env.world.start_joints).max() > 0.05   # the arm moved


def test_sim_reset_and_ctrl_c_on_a_running_sim_stack(tiny_pixel_checkpoint, tmp_path):
    log = tmp_path / "stack.log"
    with RosClient("stack_observer") as client:
        setpoints = client.collect(Vector3Stamped, "setpoint_delta")
        proc = bringup(["sim:=true", f"policy:={tiny_pixel_checkpoint}", "device:=cpu"], log)
        try:
            wait_for(lambda: len(setpoints) >= 3, 120, "setpoints from the running stack")
            # sim/reset abandons the running episode and starts the next seed.
            assert client.call(Trigger, "sim/reset", Trigger.Request()).success
            wait_for(lambda: "episode with seed 1000000 abandoned" in log.read_text(), 20, "abandoned episode")
            count = len(setpoints)
            wait_for(lambda: len(setpoints) > count + 2, 60, "setpoints in the next episode")
            os.killpg(proc.pid, signal.SIGINT)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "SIGINT: stopping all nodes" in text and "all nodes stopped" in text
    # An interrupted run still reports what it has (here: no episode finished).
    assert "interrupted: 0/0 episodes succeeded" in text
    assert not any(alive(pid) for pid in child_pids(log))


def test_episode_starts_never_stall_the_lockstep(tiny_pixel_checkpoint, tmp_path):
    """Issue #25 item 1: with a float sim clock, a setpoint stamped exactly at an episode's start
    compared below that start and was dropped, and lock-step waited step_timeout (10 s) at the
    start of many episodes (with max_steps:=3 the second one already, at t = 1.64 s). With time in
    integer nanoseconds nothing is dropped and no wait times out; the summary counts both."""
    summary, log = tmp_path / "summary.json", tmp_path / "stack.log"
    code = exit_status(bringup(["sim:=true", "episodes:=8", "max_steps:=3", f"policy:={tiny_pixel_checkpoint}",
                                "device:=cpu", f"summary:={summary}"], log), timeout=600)
    assert code == 0, log.read_text()[-3000:]
    result = json.loads(summary.read_text())
    assert result["episodes"] == 8
    assert result["lockstep"]["setpoints stamped before their episode's start"] == 0, result["lockstep"]
    assert result["lockstep"]["lock-step waits that timed out"] == 0, result["lockstep"]
    assert "lockstep: no setpoint" not in log.read_text()


def test_a_policy_of_another_task_is_refused_unless_allowed(tiny_pixel_checkpoint, tmp_path):
    """The stack runs push_states; the checkpoint was trained on push_pixels demos: the policy
    node refuses it at start-up, naming both tasks and the override, and the stack stops."""
    log = tmp_path / "other_task.log"
    code = exit_status(bringup(["sim:=true", "task:=push_states", f"policy:={tiny_pixel_checkpoint}",
                                "device:=cpu"], log), timeout=120)
    assert code == 1, log.read_text()[-3000:]
    assert "trained for task 'push_pixels', not 'push_states'; launch with any_task:=true" in log.read_text()
    assert not any(alive(pid) for pid in child_pids(log))


def exit_status(proc, timeout: float) -> int:
    """The stack's exit status; one still running after `timeout` is killed (no orphans) and
    the wait's TimeoutExpired fails the test."""
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.mark.slow
def test_closed_loop_success_through_ros_matches_in_process_eval(tmp_path):
    """IBC_ROS_EVAL_POLICY (default policies/push_pixels.pt): a trained checkpoint; IBC_ROS_EVAL_TASK,
    IBC_ROS_EVAL_EPISODES (20), IBC_ROS_EVAL_RTF (0.15). The same seeds run in-process (ibc-eval)
    and through the ROS stack; their 95% Wilson intervals must overlap."""
    checkpoint = Path(os.environ.get("IBC_ROS_EVAL_POLICY", "policies/push_pixels.pt"))
    if not checkpoint.is_file():
        pytest.skip(f"needs a trained checkpoint at {checkpoint} (set IBC_ROS_EVAL_POLICY)")
    episodes = int(os.environ.get("IBC_ROS_EVAL_EPISODES", "20"))
    task = os.environ.get("IBC_ROS_EVAL_TASK", "push_pixels")
    eval_json = tmp_path / "eval.json"
    assert evaluate.main(["--checkpoint", str(checkpoint), "--task", task, "--episodes", str(episodes),
                          "--json", str(eval_json), "--device", "cpu"]) == 0
    in_process = json.loads(eval_json.read_text())
    summary, log = tmp_path / "ros.json", tmp_path / "stack.log"
    # Slower than real time so CPU inference (~0.1-0.75 s per act for a 16384-sample DFO on
    # 2 busy cores) stays small against the 0.2 s policy period, as on a GPU at full speed.
    rtf = float(os.environ.get("IBC_ROS_EVAL_RTF", "0.15"))
    proc = bringup(["sim:=true", f"task:={task}", f"episodes:={episodes}", f"policy:={checkpoint}",
                    "device:=cpu", f"real_time_factor:={rtf}", f"summary:={summary}"], log)
    assert proc.wait(timeout=episodes * 20 / rtf + 300) == 0, log.read_text()[-3000:]
    through_ros = json.loads(summary.read_text())
    eval_successes = sum(bool(e["success"]) for e in in_process["per_episode"])
    ros_successes = through_ros["successes"]
    print(f"in-process {eval_successes}/{episodes}, through ROS {ros_successes}/{episodes}")
    low_a, high_a = wilson(eval_successes, episodes)
    low_b, high_b = wilson(ros_successes, episodes)
    assert low_a <= high_b and low_b <= high_a, (eval_successes, ros_successes)


def test_policy_node_acts_on_the_newest_fresh_frame_like_offline_inference(tiny_pixel_checkpoint, tmp_path):
    """policy_node alone: frames (+ state, if the checkpoint observes it) published by this test
    (real DDS). Its setpoints equal offline Policy.act on the same observations, carry the frame's
    stamp, skip stale frames, and take the newest of a burst; energy image and latency are published."""
    import numpy as np
    from rclpy.duration import Duration
    from std_msgs.msg import Float32, Float32MultiArray

    from ibc_ros.nodes.common import image_msg
    from cell.paths import share_file
    from tests.ros_processes import running
    from tests.test_camera_realsense import pattern

    # policy_set changes an inference setting (as irvs.inverse_eta for IRvS): offline uses the same.
    overrides = ["ebm.dfo.samples=300", "ebm.dfo.iterations=2"]
    offline = Policy.load(tiny_pixel_checkpoint, device="cpu", overrides=overrides)
    state = np.linspace(-0.3, 0.3, offline.artifacts.spec.state_dim or 10).astype(np.float32)
    frames = [pattern(i)[::2, ::2].copy() for i in range(4)]  # 320x180 frames
    argv = [sys.executable, "-m", "ibc_ros.nodes.policy_node", "--ros-args", "--params-file",
            str(share_file("config", "policy.yaml")), "-p", f"checkpoint:={tiny_pixel_checkpoint}",
            "-p", "device:=cpu", "-p", "rate_hz:=5.0", "-p", "max_frame_age:=20.0",
            "-p", f"policy_set:={' '.join(overrides)}", "-p", "image_width:=320", "-p", "image_height:=180"]
    # max_frame_age 20 s (0.5 s on the robot): a fresh frame may be resent for up to 18 s below
    # (a loaded 2-core CI machine); stale frames are 100 s old.
    with RosClient("policy_test") as client, running(argv, tmp_path / "policy.log"):
        setpoints = client.collect(Vector3Stamped, "setpoint_delta")
        latency = client.collect(Float32, "policy/latency")
        image_pub = client.publisher(Image, "camera/image_raw", qos_profile_sensor_data)
        state_pub = client.publisher(Float32MultiArray, "observation/state")
        needs_state = "state" in offline.observation_keys  # pixel configs may add the state
        wait_for(lambda: image_pub.get_subscription_count() > 0 and client.publishers_matched("setpoint_delta") > 0
                 and (state_pub.get_subscription_count() > 0 or not needs_state), 60, "policy node endpoints")

        def publish(frame, age_s: float = 0.0):
            state_pub.publish(Float32MultiArray(data=state.tolist()))
            msg = image_msg(frame, (client.now() - Duration(seconds=age_s)).to_msg())
            image_pub.publish(msg)
            return msg

        def key(stamp) -> tuple[int, int]:
            return stamp.sec, stamp.nanosec

        def resend_until_acted(msg, what: str) -> None:
            """Camera frames go best effort (sensor-data QoS, as from the real camera), so one can
            be dropped (or arrive before the node has matched this publisher) and is never
            resent: resend the same message until a setpoint carries its stamp. The node acts on
            a stamp at most once, so resending cannot add actions."""
            def acted() -> bool:
                return any(key(s.header.stamp) == key(msg.header.stamp) for s in setpoints)
            for _ in range(60):  # 0.3 s apart: 18 s, inside max_frame_age
                for _ in range(15):
                    if acted():
                        return
                    time.sleep(0.02)
                state_pub.publish(Float32MultiArray(data=state.tolist()))
                image_pub.publish(msg)
            raise AssertionError(f"no setpoint for {what}; {len(setpoints)} setpoints arrived\n"
                                 + (tmp_path / "policy.log").read_text()[-2000:])

        # A stale frame (100 s old) is never acted on.
        for _ in range(5):
            publish(frames[0], age_s=100.0)
            time.sleep(0.1)
        time.sleep(0.5)
        assert setpoints == []
        wait_for(lambda: "not acting on it" in (tmp_path / "policy.log").read_text(), 20,
                 "the policy's log line refusing the stale frame")
        assert setpoints == []

        # Fresh frames, one per policy period: actions equal offline inference step by step.
        expected = [offline.act({"rgb": frames[1], "state": state}), offline.act({"rgb": frames[2], "state": state})]
        for index, frame in enumerate(frames[1:3]):
            msg = publish(frame)
            resend_until_acted(msg, f"fresh frame {index + 1}")
            assert len(setpoints) == index + 1
            got = setpoints[-1]
            assert key(got.header.stamp) == key(msg.header.stamp)
            assert np.allclose([got.vector.x, got.vector.y], expected[index], atol=1e-6)

        # A burst of frames between two ticks: only the newest is used.
        energy = client.collect(Image, "policy/energy_image", 5)
        burst = []
        for frame in frames:
            burst.append(publish(frame))
            time.sleep(0.005)
        # Under load a tick may first act on an earlier burst frame; the next tick must then take
        # the newest, never a queued older one.
        resend_until_acted(burst[-1], "the newest frame of the burst")
        time.sleep(0.5)
        acted = [key(s.header.stamp) for s in setpoints[2:]]
        # A tick may fall inside the 20 ms burst; either way frames are skipped, never queued,
        # each is used at most once, and the newest one is acted on.
        stamps = [key(msg.header.stamp) for msg in burst]
        assert acted[-1] == stamps[-1] and len(acted) <= 2 and acted == sorted(set(acted))
        assert set(acted) <= set(stamps)
        resend_until_acted(publish(frames[0]), "a frame after the burst")
        wait_for(lambda: len(energy) >= 1, 20, "energy image")
        assert energy[-1].encoding == "rgb8" and (energy[-1].height, energy[-1].width) == (180, 320)
        assert latency and all(0.0 <= value.data < 5.0 for value in latency)
    assert f"settings changed: {overrides}" in (tmp_path / "policy.log").read_text()


def test_estop_latches_until_the_operator_releases_it(tiny_pixel_checkpoint, tmp_path):
    """Issue 27 item 3: after controller/estop the sim's next episode used to reset the controller
    and clear the e-stop (~10 s later: 201 distinct joint commands and 14 accepted setpoints in the
    next 4 s, no log line about it). Now the e-stop latches: the running episode plays out with the
    target held, controller/reset is refused, the sim does not start the next episode (and says
    so) until controller/release_estop; then episodes go on."""
    from geometry_msgs.msg import PointStamped, PoseStamped

    log = tmp_path / "stack.log"
    with RosClient("estop_observer") as client:
        setpoints = client.collect(Vector3Stamped, "setpoint_delta")
        targets = client.collect(PoseStamped, "ee_target", 10000)
        accepted = client.collect(PointStamped, "controller/setpoint", 1000)
        # 30 steps an episode: the e-stop lands early in episode 1, with ~28 steps (~560 ticks) left
        # to play out under it. (With 4 steps it could land between episodes on a fast machine,
        # leaving no tick to hold: CI once saw 0 targets after the e-stop.)
        proc = bringup(["sim:=true", f"policy:={tiny_pixel_checkpoint}", "device:=cpu", "max_steps:=30"], log)
        try:
            wait_for(lambda: len(setpoints) >= 2 and len(targets) > 0, 120, "setpoints from the running stack")
            assert client.call(Trigger, "controller/estop", Trigger.Request()).success
            mark, mark_accepted = len(targets), len(accepted)
            # The episode ends (max_steps); the next one is refused while the e-stop is latched.
            wait_for(lambda: "not starting the next episode" in log.read_text(), 120,
                     "the sim refusing to start an episode while the e-stop is latched")
            reply = client.call(Trigger, "controller/reset", Trigger.Request())
            assert not reply.success and "e-stop latched" in reply.message
            quiet_since(targets, 1.0, 30, "the held stack")
            after = [(t.pose.position.x, t.pose.position.y) for t in targets[mark:]]
            assert len(after) > 100, f"only {len(after)} ticks after the e-stop: the episode did not play out"
            # (the first few may have been published before the e-stop took effect)
            assert len(set(after[5:])) == 1, f"{len(set(after[5:]))} distinct targets while e-stopped"
            held = after[-1]
            # no setpoint accepted: the controller answers each (lock-step) with the held one
            assert all((p.point.x, p.point.y) == held for p in accepted[mark_accepted + 2:])
            text = log.read_text()
            assert "E-STOP latched" in text and "e-stop latched" in text.split("not starting the next episode")[1]
            ended = re.findall(r"episode (\d+) \(seed", text)
            # (the e-stop catches episode 1; the check allows a later one on a machine that stalled)
            assert ended and ended == [str(k) for k in range(1, len(ended) + 1)]
            assert re.findall(r"episode (\d+) \(seed", log.read_text()) == ended   # none started meanwhile
            # The operator's release: episodes go on, setpoints move the target again.
            assert client.call(Trigger, "controller/release_estop", Trigger.Request()).success
            wait_for(lambda: f"episode {len(ended) + 1} (seed" in log.read_text(), 120,
                     "the next episode after the release")
            assert "e-stop released by the operator" in log.read_text()
            assert len({(t.pose.position.x, t.pose.position.y) for t in targets[mark:]}) > 2
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)


def test_controller_reset_mid_episode_goes_through_the_limits(tiny_pixel_checkpoint, tmp_path):
    """Issue 27 item 4: controller/reset mid-episode on the sim stack used to jump joint_command
    by 0.951 rad in one cycle and the simulated tip by up to 58 mm per tick. Now it drives the
    target back to the start in a straight line at return_speed: every joint command passes the
    arm's limits (the driver's check), and the simulated arm never refuses one."""
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import JointState

    from cell.control import SafetyEnvelope, load_controller_config
    from cell.control.arm_limits import ArmLimits, load_arm_limits

    config = load_controller_config()
    limits = ArmLimits(load_arm_limits())
    start = SafetyEnvelope(config).clamp_target(config.start_xy)
    log = tmp_path / "stack.log"
    with RosClient("reset_observer") as client:
        setpoints = client.collect(Vector3Stamped, "setpoint_delta")
        commands = client.collect(JointState, "joint_command", 10000)
        states = client.collect(JointState, "joint_states", 10000)
        targets = client.collect(PoseStamped, "ee_target", 10000)
        proc = bringup(["sim:=true", f"policy:={tiny_pixel_checkpoint}", "device:=cpu", "max_steps:=200"], log)
        try:
            # joint_states and joint_command must already be arriving here: the checks below start
            # one message before the reset (a mark of 0 would index the list from its end)
            wait_for(lambda: len(setpoints) >= 5 and len(targets) > 0 and len(states) > 0 and len(commands) > 0
                     and np.linalg.norm(
                [targets[-1].pose.position.x - start[0], targets[-1].pose.position.y - start[1]]) > 0.02,
                180, "the policy moving the target away from the start")
            marks = len(commands), len(states), len(targets)
            reply = client.call(Trigger, "controller/reset", Trigger.Request())
            assert reply.success
            wait_for(lambda: np.allclose([targets[-1].pose.position.x, targets[-1].pose.position.y],
                                         start[:2], atol=1e-9), 120, "the target back at the start")
            count = len(states)
            wait_for(lambda: len(states) > count + 20, 60, "the arm settling at the start")
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert "episode 1 (seed" not in text   # one episode throughout: no placement in the window
    assert "sim arm refusing" not in text
    q = np.array([m.position for m in commands[marks[0] - 1:]])
    tq = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in commands[marks[0] - 1:]])
    assert np.abs(np.diff(q, axis=0)).max() <= config.max_joint_step + 1e-9
    check = ArmLimits(limits.config, kinematics=limits.kinematics)
    check.reset(q[0])
    assert [check.submit(x, t) for x, t in zip(q[1:], tq[1:])] == [None] * (len(q) - 1)
    # The simulated tip (forward kinematics of the sim's joint_states) per 10 ms tick.
    tips = np.array([limits.tip(m.position) for m in states[marks[1] - 1:]])
    moves = np.linalg.norm(np.diff(tips, axis=0), axis=1)
    print(f"simulated tip per tick during the return: max {moves.max() * 1000:.2f} mm")
    assert moves.max() <= limits.config.max_tip_speed * config.period_s
    assert "returning to the start" in reply.message


def test_sim_node_takes_the_controller_config_the_stack_gives_the_controller(tmp_path):
    """Issue 24: the sim node loaded the installed controller.yaml whatever the controller node's
    config_file said. The stack gives both the same file (controller_config:=), and the sim's arm
    starts where that file says: here start_xy (0.45, 0.1) instead of the installed (0.3, -0.4).
    The controller only answers controller/start_episode (its commands and setpoints are remapped
    away), so the pose and setpoint the sim reports come from the sim's own config."""
    import yaml
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float32MultiArray

    from cell.control.arm_limits import ArmLimits, load_arm_limits
    from cell.paths import share_file
    from cell.stack import load_stack, parse_arguments, resolve
    from tests.fault.conftest import node_argv
    from tests.ros_processes import running

    controller_yaml = yaml.safe_load(share_file("config", "controller.yaml").read_text())
    assert controller_yaml["start_xy"] == [0.3, -0.4]
    controller_yaml["start_xy"] = [0.45, 0.1]
    custom = tmp_path / "controller_custom.yaml"
    custom.write_text(yaml.safe_dump(controller_yaml))
    stack = load_stack("real_push")
    nodes = {spec.name: spec for spec in resolve(stack, parse_arguments(stack, ["sim:=true",
                                                                               f"controller_config:={custom}"]))}
    assert nodes["sim"].parameters["config_file"] == nodes["controller"].parameters["config_file"] == str(custom)

    controller = node_argv("controller_node", "controller_node.yaml", "reset_jumps:=true", "use_sim_time:=true") \
        + ["-r", "joint_command:=unused_joint_command", "-r", "controller/setpoint:=unused_setpoint"]
    sim = node_argv("sim_node", "sim.yaml", "supervise:=false", "lockstep:=false", "task:=push_states",
                    f"config_file:={custom}")
    log = tmp_path / "sim.log"
    with RosClient("sim_config") as client, running(controller, tmp_path / "controller.log"), \
            running(sim, log) as proc:
        states = client.collect(Float32MultiArray, "observation/state", 100)
        joints = client.collect(JointState, "joint_states", 1000)
        wait_for(lambda: "ready" in log.read_text() and len(states) >= 3 and len(joints) >= 20, 120,
                 "the sim scene up")
        assert proc.poll() is None
    state = np.array(states[-1].data)
    # PushWorld.state: block x, y, yaw; tip x, y; setpoint x, y; target x, y, yaw
    assert np.allclose(state[5:7], [0.45, 0.1], atol=1e-6), state
    assert np.allclose(state[3:5], [0.45, 0.1], atol=0.005), state
    tip = ArmLimits(load_arm_limits()).tip(joints[-1].position)   # forward kinematics of joint_states
    assert np.allclose(tip[:2], [0.45, 0.1], atol=0.005), tip
