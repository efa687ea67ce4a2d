"""sim node: the PyBullet twin of the cell behind the camera + arm interfaces, and the episode
supervisor of `ibc-ros launch real_push sim:=true episodes:=N`.

  sub joint_command (sensor_msgs/JointState)           -> simulated xArm joint position targets
  sub controller/setpoint (geometry_msgs/PointStamped) -> the effector target in the state
  pub joint_states (100 Hz sim time), camera/image_raw (rgb8, camera_hz, stamp = render time),
      observation/state (std_msgs/Float32MultiArray, just before every frame: the task's state
      vector as sim.PushEnv builds it - for state-observing policies; hardware has no such topic),
      /clock (rosgraph_msgs/Clock: the other nodes run with use_sim_time:=true),
      task/success (std_msgs/Bool), task/distance (std_msgs/Float32, m), task/score (std_msgs/Float32:
      the task's partial credit in [0, 1], e.g. 0.5 for a partial insertion) at status_hz
  srv sim/reset (std_srvs/Trigger): abandon the episode and start the next seed
The simulated arm applies a joint_command only if the arm's hard limits accept it - the same
check (cell.control.arm_limits) the xArm driver applies; otherwise it holds and logs why.
The arm, its start pose and the controller period come from config_file, the controller node's
ControllerConfig YAML (config/stack.yaml gives both nodes the same one: controller_config:=).
Episodes (supervise: true, the real_push stack): reset the world (seed = first_seed + k), then
controller/start_episode (the command jumps to the start pose, where the world placed the arm; the
controller refuses while its e-stop is latched, and the sim then waits, logging it, until the
operator's controller/release_estop) and policy/reset (so neither acts on the previous episode), run until success or
the task's max_steps policy periods, print the result, repeat; after `episodes` episodes
(0 = forever) print the summary, write summary_file (JSON: sim.rollout's EpisodeResult per
episode and its summarize keys, as ibc-eval writes them) if set, and exit - which ends the
stack. supervise: false (the record_demos stack): the operator owns the episodes - the scene runs
until sim/reset puts the next seed's scene up (and resets the controller); no policy is waited for,
frames come at camera_hz.

Timing (lockstep: true, the default) reproduces in-process `ibc-eval` step for step: sim time
only advances when the stack has answered. Every 10 ms tick first publishes the new /clock time,
then waits (wall time, at most step_timeout) for the controller's joint_command stamped with that
time, applies it and steps physics - exactly PushEnv.step's order. In supervised episodes (they
need the policy node: its policy/reset is waited for up to service_timeout) frames are rendered
only at policy-step boundaries (every 1/control_hz = 0.2 s of sim time, the
controller's setpoint cycle; camera_hz is not used), and sim time stands still until the
controller has taken the policy's setpoint for that frame (controller/setpoint stamped at the
boundary): the observation is exactly the scene at the boundary, and the action starts there,
however long inference takes. The policy node acts on every new frame (act_on_new_frames), not on
a sim-time timer that a frozen clock would never fire. lockstep: false free-runs like a real cell:
frames at camera_hz, commands applied when they arrive. real_time_factor caps the speed in both.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from geometry_msgs.msg import PointStamped
from std_msgs.msg import Bool, Float32, Float32MultiArray
from std_srvs.srv import Trigger

from cell.control import controller_config_path, load_controller_config
from ibc_core.config_io import owned_by
from ibc_ros.nodes.common import (config_from_parameters, image_msg, joint_positions, joint_state_msg,
                                  run_node, stamp_ns)
from sim.env import make_world
from sim.config import load_task_config
from sim.rollout import EpisodeResult, summarize
from sim.tasks import EVAL_SEED_BASE

# Sim time is integer nanoseconds: a float accumulated tick by tick drifts from the stamps that
# come back (898 of 2,500 ticks compared above their own round trip), and a setpoint stamped
# exactly at an episode's start was then dropped as older (a 10 s lockstep stall per episode).
START_TIME_NS = 1_000_000_000  # sim clock origin (1 s); 0 reads as "no time yet" to ROS clocks


@dataclass
class SimNodeConfig:
    task: str = "push_pixels"
    episodes: int = 0                  # stop after this many (0 = run until shut down)
    # evaluation seeds (training data uses seeds below EVAL_SEED_BASE)
    first_seed: int = owned_by("sim.tasks.EVAL_SEED_BASE", default=EVAL_SEED_BASE)
    max_steps: int = 0                 # policy periods per episode; 0 = the task's max_steps
    real_time_factor: float = 1.0      # sim seconds per wall second (upper bound)
    camera_hz: float = 10.0            # sim-time render rate (TinyRenderer on CPU costs ~40 ms/frame)
    camera_width: int = 0              # 0 = the task's render size (pixel tasks: ibc-eval's frames;
                                       # state tasks: half the camera's 640x360)
    camera_height: int = 0
    status_hz: float = 10.0
    service_timeout: float = 120.0     # wall s to wait for controller/start_episode and policy/reset (torch
                                       # import + checkpoint load can take a minute on a busy CPU)
    summary_file: str = ""             # write the episode results as JSON here at the end
    supervise: bool = True             # run episodes itself; false: the operator resets (sim/reset)
    lockstep: bool = True              # sim time waits for joint commands and the policy (see above)
    step_timeout: float = 10.0         # lockstep: wall s to wait for a command/setpoint, then go on
    config_file: str = "controller.yaml"   # the controller node's ControllerConfig YAML (same meaning)

    def validate(self) -> None:
        if self.episodes < 0 or self.first_seed < 0 or self.max_steps < 0:
            raise ValueError("episodes, first_seed and max_steps must be >= 0")
        if min(self.real_time_factor, self.camera_hz, self.status_hz, self.service_timeout, self.step_timeout) <= 0:
            raise ValueError("real_time_factor, camera_hz, status_hz, service_timeout and step_timeout "
                             "must be positive")


class SimNode(Node):
    def __init__(self) -> None:
        super().__init__("sim")
        self.config = config_from_parameters(self, SimNodeConfig)
        self.task = load_task_config(self.config.task)
        self.max_steps = self.config.max_steps or self.task.max_steps
        controller = load_controller_config(controller_config_path(self.config.config_file))
        self.dt = controller.period_s
        self.dt_ns = round(controller.period_s * 1e9)
        self.ticks_per_step = round(controller.rate_hz / self.task.control_hz)
        self.camera_every = max(1, round(1.0 / (self.config.camera_hz * self.dt)))
        self.status_every = max(1, round(1.0 / (self.config.status_hz * self.dt)))
        self.render_size = self._render_size()
        self.world = make_world(self.task, controller)
        self.start_setpoint = self.world.start_target[:2]   # where the controller's command starts
        self._setpoint = self.start_setpoint.copy()
        self.now_ns = START_TIME_NS
        self.results: list[EpisodeResult] = []
        self._finished = False   # all episodes ran and the summary is out
        self._command: tuple[np.ndarray, float] | None = None
        # All stamps in integer nanoseconds.
        self._applied_stamp = -1           # stamp of the last joint command offered to the arm
        self._setpoint_stamp = 0           # stamp of the controller's newest setpoint
        self._paced_by_policy = False      # lockstep episodes: frames at policy-step boundaries
        self._reset_stamp = START_TIME_NS
        # What lock-step had to drop or repeat, with the reason: reported per episode and in the summary.
        self.dropped: dict[str, int] = {"setpoints stamped before their episode's start": 0,
                                        "frames sent again (no setpoint within a control period)": 0,
                                        "lock-step waits that timed out": 0}
        self._frame_msgs: tuple[Float32MultiArray, Image] | None = None
        self._command_lock = threading.Condition()
        self._reset_requested = threading.Event()
        self._stop = threading.Event()

        self.clock_pub = self.create_publisher(Clock, "/clock", 10)
        self.joint_pub = self.create_publisher(JointState, "joint_states", 10)
        self.image_pub = self.create_publisher(Image, "camera/image_raw", qos_profile_sensor_data)
        self.state_pub = self.create_publisher(Float32MultiArray, "observation/state", 10)
        self.create_subscription(PointStamped, "controller/setpoint", self._on_setpoint, 10)
        self.success_pub = self.create_publisher(Bool, "task/success", 10)
        self.distance_pub = self.create_publisher(Float32, "task/distance", 10)
        self.score_pub = self.create_publisher(Float32, "task/score", 10)
        self.create_subscription(JointState, "joint_command", self._on_command, 1)
        self.create_service(Trigger, "sim/reset", self._on_reset)
        self.controller_start = self.create_client(Trigger, "controller/start_episode")
        self.policy_reset = self.create_client(Trigger, "policy/reset")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _render_size(self) -> tuple[int, int]:
        if self.config.camera_width and self.config.camera_height:
            return self.config.camera_width, self.config.camera_height
        if "rgb" in self.task.observation_keys:
            return self.task.render_width, self.task.render_height  # the frames ibc-eval's policy sees
        # State tasks: the frames only pace the policy and show the scene; a full 640x360
        # CPU render (~110 ms) would hold the sim below real time. Same view, half size.
        return self.task.camera.width // 2, self.task.camera.height // 2

    # ------------------------------------------------------------------ callbacks
    def _on_command(self, msg: JointState) -> None:
        try:
            q = joint_positions(msg)
        except ValueError as exc:
            self.get_logger().error(f"bad joint_command rejected: {exc}", throttle_duration_sec=1.0)
            return
        with self._command_lock:
            self._command = (q, stamp_ns(msg.header.stamp))
            self._command_lock.notify_all()

    def _on_setpoint(self, msg: PointStamped) -> None:
        stamp = stamp_ns(msg.header.stamp)
        if stamp < self._reset_stamp:
            self.dropped["setpoints stamped before their episode's start"] += 1
            return
        with self._command_lock:
            self._setpoint = np.array([msg.point.x, msg.point.y])
            self._setpoint_stamp = stamp
            self._command_lock.notify_all()

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._reset_requested.set()
        response.success, response.message = True, "the next episode starts"
        return response

    # ------------------------------------------------------------------ episode loop
    def _run(self) -> None:
        try:
            self._wait_for(self.controller_start)
            if not self.config.supervise:
                self._run_operator_scenes()
                return
            # The episode supervisor evaluates a policy: without one, lockstep would time out at
            # every step, and a late one would find the sim in the wrong timing mode.
            self._wait_for(self.policy_reset)
            self._paced_by_policy = self.config.lockstep
            episode = 0
            while not self._stop.is_set() and (self.config.episodes == 0 or episode < self.config.episodes):
                result = self._run_episode(self.config.first_seed + episode)
                if result is None:
                    continue  # abandoned via sim/reset: same count, next seed
                episode += 1
                self.results.append(result)
                self._report(result, episode)
            if not self._stop.is_set():
                self._finish()
        except Exception as exc:  # surface, then end the node so the stack stops
            if self._stop.is_set() or not self.context.ok():
                return  # shutting down (Ctrl-C or the stack stopping): not a failure
            self.get_logger().fatal(f"simulation failed: {exc!r}")
            rclpy.try_shutdown() if hasattr(rclpy, "try_shutdown") else rclpy.shutdown()

    def _wait_for(self, client) -> None:
        deadline = time.monotonic() + self.config.service_timeout
        while not client.wait_for_service(timeout_sec=0.5):
            self._publish_clock()  # nodes on sim time need a clock to start their timers
            if self._stop.is_set() or time.monotonic() > deadline:
                raise RuntimeError(f"service {client.srv_name} not available after {self.config.service_timeout:.0f} s")

    def _call(self, client) -> Trigger.Response | None:
        future = client.call_async(Trigger.Request())
        deadline = time.monotonic() + self.config.service_timeout
        while not future.done():
            if self._stop.is_set():
                return None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{client.srv_name} did not answer within {self.config.service_timeout:.0f} s")
            time.sleep(0.005)
        return future.result()

    def _start_controller_episode(self) -> None:
        """controller/start_episode until it accepts: while the controller's e-stop is latched it
        refuses, and no episode starts until the operator releases it (controller/release_estop)."""
        while not self._stop.is_set():
            reply = self._call(self.controller_start)
            if reply is None or reply.success:
                return
            self.get_logger().warning(f"not starting the next episode: {reply.message}", throttle_duration_sec=10.0)
            self._stop.wait(0.5)

    def _start_episode(self, seed: int, with_policy: bool) -> None:
        # Sim time stands still during the reset except for two ticks: one before the resets
        # (everything stamped earlier belongs to the old episode: the controller and policy drop
        # it) and one after (joint commands stamped from then on follow the reset controller).
        self.world.reset(seed)
        with self._command_lock:
            self._setpoint = self.start_setpoint.copy()
            self._command = None
        self._advance_clock()
        self._reset_stamp = self.now_ns  # from here on, older setpoint messages are ignored
        self._start_controller_episode()
        if with_policy:
            self._call(self.policy_reset)
        self._advance_clock()
        self._reset_stamp = self.now_ns

    @property
    def sim_time(self) -> float:
        """Seconds (for pacing and log lines; every comparison uses now_ns)."""
        return self.now_ns * 1e-9

    def _advance_clock(self) -> None:
        self.now_ns += self.dt_ns
        self._publish_clock()

    def _run_operator_scenes(self) -> None:
        """record_demos: one scene per sim/reset; the operator starts/stops the recordings."""
        seed = self.config.first_seed
        while not self._stop.is_set():
            self._start_episode(seed, with_policy=False)
            self._reset_requested.clear()
            self.get_logger().info(f"scene of seed {seed} ready (sim/reset for the next one)")
            self._publish_camera()
            wall_start, sim_start = time.monotonic(), self.sim_time
            while not self._stop.is_set() and not self._reset_requested.is_set():
                self._tick()
                self._pace(wall_start, sim_start)
            seed += 1

    def _run_episode(self, seed: int) -> EpisodeResult | None:
        self._start_episode(seed, with_policy=True)
        self._reset_requested.clear()
        if not self._paced_by_policy:
            self._publish_camera()
        wall_start, sim_start = time.monotonic(), self.sim_time
        steps = 0
        while not self._stop.is_set():
            if self._paced_by_policy:
                self._await_policy_step()
            for _ in range(self.ticks_per_step):
                if self._stop.is_set():
                    return None
                if self._reset_requested.is_set():
                    self.get_logger().info(f"episode with seed {seed} abandoned (sim/reset)")
                    return None
                self._tick()
                self._pace(wall_start, sim_start)
            steps += 1
            status = self.world.task_status()
            if status.ends_episode(steps, self.max_steps):
                return EpisodeResult(seed, bool(status.success), steps, float(status.distance), float(status.score))
        return None

    def _await_policy_step(self) -> None:
        """Policy-step boundary in lockstep: the frame of this instant, then sim time stands
        still until the controller has taken the setpoint the policy computed from it. A frame
        lost on the way (best-effort) or not acted on is sent again after one control period of
        silence, so it costs at most that period, not step_timeout."""
        self._publish_camera()
        boundary = self.now_ns
        answered = lambda: self._setpoint_stamp >= boundary - self.dt_ns // 2  # noqa: E731
        deadline = time.monotonic() + self.config.step_timeout
        period = 1.0 / self.task.control_hz
        while not self._await(answered, min(period, deadline - time.monotonic())):
            if self._stop.is_set():
                return
            if time.monotonic() >= deadline:
                self.dropped["lock-step waits that timed out"] += 1
                self.get_logger().warning(f"lockstep: no setpoint for the frame at t={boundary * 1e-9:.2f} s within "
                                          f"{self.config.step_timeout} s: going on", throttle_duration_sec=5.0)
                return
            self.dropped["frames sent again (no setpoint within a control period)"] += 1
            self._republish_frame()

    def _await(self, condition, seconds: float | None = None) -> bool:
        """Wait (wall time, at most `seconds`, default step_timeout) until condition() holds under
        the command lock."""
        deadline = time.monotonic() + (self.config.step_timeout if seconds is None else seconds)
        with self._command_lock:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return False
                self._command_lock.wait(min(remaining, 0.1))
        return True

    def _tick(self) -> None:
        # The new time first: the controller computes the command for it (PushEnv.step's order).
        self._advance_clock()
        now = self.now_ns
        commanded = not self.config.lockstep or self._await(
            lambda: self._command is not None and self._command[1] >= now - self.dt_ns // 2)
        if not commanded and not self._stop.is_set():   # (at shutdown the controller goes first)
            self.dropped["lock-step waits that timed out"] += 1
            self.get_logger().warning(f"lockstep: no joint_command for t={now * 1e-9:.2f} s within "
                                      f"{self.config.step_timeout} s: going on", throttle_duration_sec=5.0)
        with self._command_lock:
            command = self._command
        # Only commands issued in this episode drive the arm; until then it holds the start pose.
        # Each command is offered once; the arm refuses (and holds) what the driver would refuse.
        if command is not None and command[1] >= self._reset_stamp and command[1] > self._applied_stamp:
            self._applied_stamp = command[1]
            reason = self.world.apply_joint_command(command[0], command[1] * 1e-9)
            if reason is not None:
                self.get_logger().error(f"sim arm refusing a joint_command, holding: {reason} "
                                        f"[{self.world.refused} refused so far]", throttle_duration_sec=1.0)
        self.world.step(self.dt)
        stamp = self._stamp()
        self.joint_pub.publish(joint_state_msg(self.world.joint_positions(), stamp))
        ticks = (self.now_ns - START_TIME_NS) // self.dt_ns
        if not self._paced_by_policy and ticks % self.camera_every == 0:
            self._publish_camera()
        if ticks % self.status_every == 0:
            status = self.world.task_status()
            self.success_pub.publish(Bool(data=bool(status.success)))
            self.distance_pub.publish(Float32(data=float(status.distance)))
            self.score_pub.publish(Float32(data=float(status.score)))

    def _pace(self, wall_start: float, sim_start: float) -> None:
        ahead = (self.sim_time - sim_start) / self.config.real_time_factor - (time.monotonic() - wall_start)
        if ahead > 0:
            time.sleep(ahead)

    # ------------------------------------------------------------------ publishing
    def _stamp(self):
        return Time(nanoseconds=self.now_ns).to_msg()

    def _publish_clock(self) -> None:
        self.clock_pub.publish(Clock(clock=self._stamp()))

    def _publish_camera(self) -> None:
        with self._command_lock:
            setpoint = self._setpoint.copy()
        state = self.world.state(setpoint)   # PushEnv's observation, with the controller node's setpoint
        frame = self.world.render_rgb(*self.render_size)
        self._frame_msgs = (Float32MultiArray(data=state.tolist()), image_msg(frame, self._stamp(), "sim_camera"))
        self._republish_frame()

    def _republish_frame(self) -> None:
        """The newest state + frame pair (again, for a lock-step frame that got no answer)."""
        state, image = self._frame_msgs
        self.state_pub.publish(state)
        self.image_pub.publish(image)

    def _report(self, result: EpisodeResult, episode: int) -> None:
        total = f"/{self.config.episodes}" if self.config.episodes else ""
        verdict = "SUCCESS" if result.success else "failure"
        tally = summarize(self.results)
        self.get_logger().info(f"episode {episode}{total} (seed {result.seed}): {verdict} after {result.steps} "
                               f"steps, block-target distance {result.final_distance * 1e3:.1f} mm, score "
                               f"{result.score:.3g} [{tally['successes']}/{tally['episodes']} succeeded]")

    def _finish(self) -> None:
        self._finished = True
        self.get_logger().info(self._summary("done"))
        self._write_summary()
        rclpy.try_shutdown() if hasattr(rclpy, "try_shutdown") else rclpy.shutdown()

    def _summary(self, verdict: str) -> str:
        tally = summarize(self.results)
        dropped = "; ".join(f"{count} {what}" for what, count in self.dropped.items() if count)
        return (f"{verdict}: {tally['successes']}/{tally['episodes']} episodes succeeded "
                f"({100 * tally['success_rate']:.1f}%), mean score {tally['mean_score'] or 0.0:.3f}, "
                f"task {self.config.task}, tolerance {self.task.success_tolerance} m"
                + (f"; lock-step: {dropped}" if dropped else "; lock-step: nothing dropped or repeated"))

    def _write_summary(self) -> None:
        if self.config.summary_file:
            summary = {"task": self.config.task, **summarize(self.results), "tolerance": self.task.success_tolerance,
                       "lockstep": dict(self.dropped), "results": [asdict(r) for r in self.results]}
            Path(self.config.summary_file).write_text(json.dumps(summary, indent=2))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        if not self._finished:   # Ctrl-C / the stack stopping: the episodes so far still count
            # print: rclpy's context (and with it the logger's output) may already be shut down
            print(self._summary("interrupted"), flush=True)
            self._write_summary()
        self.world.close()


def main(args: list[str] | None = None) -> None:
    run_node(SimNode, args)  # the episode loop has its own thread


if __name__ == "__main__":
    main()
