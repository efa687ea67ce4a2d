"""policy node: camera/image_raw -> 5 Hz IBC inference -> setpoint_delta.

  sub camera/image_raw (sensor-data QoS: best effort, keep-last; only the newest frame is used),
      observation/state (std_msgs/Float32MultiArray; only for policies that observe "state": sim)
  pub setpoint_delta (geometry_msgs/Vector3Stamped: x=dx, y=dy m, header.stamp = image stamp),
      policy/energy_image (sensor_msgs/Image: energy inset on the frame, only with subscribers),
      policy/latency (std_msgs/Float32: s from the frame's capture stamp to the setpoint, node clock),
      policy/inference_time (std_msgs/Float32: wall s of Policy.act)
  srv policy/reset (std_srvs/Trigger): new episode - clears the frame history
Inference runs in a timer at rate_hz (not in the image callback), always on the newest frame;
frames older than max_frame_age, stamped more than max_frame_lead ahead of the node's clock,
already used, or from before the last reset are not acted on (cell.frame_gate); frames whose
size is not the camera configuration (image_width x image_height) are refused on arrival.
The node spins one thread: frames arriving during inference wait in the subscription's keep-last
queue (sensor-data QoS) and the next tick takes the newest (60 Hz flood test: 5.00 Hz held).
act_on_new_frames: true (the lock-step sim, which renders exactly one frame per policy step and
holds its clock until the answer) runs the same inference as soon as a new frame is there, woken
by a guard condition instead of the timer. A state-observing policy acts only once the state
published with the frame has arrived too (the two topics are not delivered in a fixed order).
The checkpoint (ibc_core Policy API) does its own crop/resize (ibc_core.data.preprocess), the
same as in training, and keeps the frame history it was trained with.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from geometry_msgs.msg import Vector3Stamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Float32, Float32MultiArray
from std_srvs.srv import Trigger

from cell.energy_overlay import energy_overlay
from cell.frame_gate import FrameGate
from ibc_ros.nodes.common import (DropCount, EStopWatch, age_seconds, check_image, config_from_parameters,
                                  image_array, image_msg, run_node, setpoint_delta_msg, stamp_ns)
from cell.paths import share_dir
from cell.timing import load_timing, timing_default

# The real cell observes the table through the camera only; "state" (block/target poses) exists
# in simulation, where the sim node publishes it on observation/state with every frame.
SUPPORTED_OBSERVATIONS = {"rgb", "state"}


@dataclass
class PolicyNodeConfig:
    checkpoint: str = "policies/push_pixels.pt"
    device: str = "auto"               # auto = cuda when present, else cpu
    # DFO search precision (ibc_core.policy): auto | float32 | bfloat16 | int8; the action is
    # always chosen by float32 energies.
    precision: str = "auto"
    # The cell's control rate (config/timing.yaml, the one owner): a parameter override must agree.
    rate_hz: float = timing_default("control_hz")
    max_frame_age: float = 0.5         # s; older frames are refused
    max_frame_lead: float = 0.1        # s; frames stamped further ahead of the node's clock are refused
    # The camera configuration: frames of another size are refused (camera.yaml 640x360; the sim
    # renders 320x180, set by stack.yaml with sim:=true).
    image_width: int = 640
    image_height: int = 360
    energy_resolution: int = 32        # energy grid per axis for policy/energy_image
    torch_threads: int = 0             # 0 = torch's default
    act_on_new_frames: bool = False    # true: act on each new frame at once (lock-step sim)
    # Inference settings of the checkpoint, space-separated key=value (ibc-eval's policy.key=value):
    # e.g. "irvs.inverse_eta=2" (IRvS: how strongly to aim for high returns), "ebm.dfo.samples=4096".
    policy_set: str = ""
    # The task this cell runs: a checkpoint trained for another is refused at start-up, unless
    # any_task ('' = not checked; real_push with sim:=true passes its task).
    task: str = ""
    any_task: bool = False

    @property
    def policy_overrides(self) -> list[str]:
        return self.policy_set.split()

    def validate(self) -> None:
        load_timing().check("rate_hz", self.rate_hz, "control_hz")
        if self.max_frame_age <= 0 or self.energy_resolution < 2:
            raise ValueError("max_frame_age must be positive, energy_resolution >= 2")
        if not self.max_frame_lead >= 0:
            raise ValueError(f"max_frame_lead must be >= 0, got {self.max_frame_lead}")
        if self.image_width < 1 or self.image_height < 1:
            raise ValueError(f"image_width and image_height must be positive, got {self.image_width}x{self.image_height}")
        from ibc_core.policy import PRECISIONS   # imports torch, which the node loads next anyway
        if self.precision not in ("auto", *PRECISIONS):
            raise ValueError(f"precision must be auto, {', '.join(PRECISIONS)}; got {self.precision!r}")


class PolicyLoadError(RuntimeError):
    pass


def resolve_checkpoint(name: str) -> Path:
    """A path as given (absolute or relative to the working directory), else in the share dir;
    a training run's folder stands for its policy.pt."""
    from ibc_core.checkpoint import policy_file   # imports torch, which the node loads next anyway
    candidates = [Path(name)] if Path(name).is_absolute() else [Path.cwd() / name, share_dir() / name]
    candidates = list(dict.fromkeys(policy_file(candidate.resolve()) for candidate in candidates))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise PolicyLoadError(f"policy checkpoint {name!r} not found (looked at {', '.join(map(str, candidates))}); "
                          "train one (README: ibc-train) or pass policy:=/path/to/checkpoint.pt")


class PolicyNode(Node):
    def __init__(self) -> None:
        super().__init__("policy")
        self.config = config_from_parameters(self, PolicyNodeConfig)
        self.policy = self._load_policy()
        self._frame: Image | None = None
        self._state: np.ndarray | None = None
        self._state_fresh = False          # a state arrived since the last action
        self._frame_lock = threading.Lock()
        self._gate = FrameGate(self.config.max_frame_age, self.config.max_frame_lead)

        self.setpoint_pub = self.create_publisher(Vector3Stamped, "setpoint_delta", 10)
        self.energy_pub = self.create_publisher(Image, "policy/energy_image", 1)
        self.latency_pub = self.create_publisher(Float32, "policy/latency", 10)
        self.inference_pub = self.create_publisher(Float32, "policy/inference_time", 10)
        self._wake = self.create_guard_condition(self._on_tick) \
            if self.config.act_on_new_frames else None
        self.create_subscription(Image, "camera/image_raw", self._on_image, qos_profile_sensor_data)
        if "state" in self.policy.observation_keys:
            self.get_logger().warning("this policy observes 'state': only the sim node provides it")
            self.create_subscription(Float32MultiArray, "observation/state", self._on_state, 10)
        self.estop = EStopWatch(self)   # no new episode (policy/reset) while the e-stop is latched
        self.drops = DropCount()
        self.create_service(Trigger, "policy/reset", self._on_reset)
        if not self.config.act_on_new_frames:
            self.create_timer(1.0 / self.config.rate_hz, self._on_tick)

    def _load_policy(self):
        import torch
        from ibc_core.policy import Policy
        if self.config.torch_threads > 0:
            torch.set_num_threads(self.config.torch_threads)
        path = resolve_checkpoint(self.config.checkpoint)
        policy = Policy.load(path, device=self.config.device, overrides=self.config.policy_overrides,
                             precision=self.config.precision)
        if self.config.task and not self.config.any_task:
            try:
                policy.check_task(self.config.task)
            except ValueError as exc:
                raise PolicyLoadError(f"{path}: {exc}; launch with any_task:=true to run it anyway") from exc
        unsupported = set(policy.observation_keys) - SUPPORTED_OBSERVATIONS
        if unsupported:
            raise PolicyLoadError(f"{path} needs observation(s) {sorted(unsupported)}; the ROS stack provides "
                                  f"{sorted(SUPPORTED_OBSERVATIONS)} (camera images) - use a pixel policy")
        self.get_logger().info(f"loaded {path} on {policy.device} ({policy.precision} DFO search): "
                               f"observations {policy.observation_keys}, "
                               f"history {policy.history_length}, image spec {policy.image_spec}, "
                               f"settings changed: {self.config.policy_overrides or 'none'}")
        return policy

    def _on_image(self, msg: Image) -> None:
        try:
            # a bad frame never replaces the newest good one
            check_image(msg, (self.config.image_width, self.config.image_height))
        except ValueError as exc:
            self.drops.add("camera frames that failed the image check (encoding, size, data)")
            self.get_logger().error(f"camera frame rejected: {exc}", throttle_duration_sec=2.0)
            return
        with self._frame_lock:
            self._frame = msg
        self._wake_up()

    def _on_state(self, msg: Float32MultiArray) -> None:
        with self._frame_lock:
            self._state = np.asarray(msg.data, dtype=np.float32)
            self._state_fresh = True
        self._wake_up()

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.trigger()

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        refusal = self.estop.refusal("policy/reset (a new episode)")
        if refusal:
            self.get_logger().error(refusal, throttle_duration_sec=2.0)
            response.success, response.message = False, refusal
            return response
        self.policy.reset()
        with self._frame_lock:
            self._state, self._state_fresh = None, False
        self._gate.reset(self.get_clock().now().nanoseconds)
        response.success, response.message = True, "history cleared"
        return response

    def _take_frame(self) -> Image | None:
        with self._frame_lock:
            msg = self._frame
            # The state is published right before its frame: wait for it rather than pair the
            # frame with the previous step's state.
            state_missing = "state" in self.policy.observation_keys and not self._state_fresh
        if msg is None or state_missing:
            return None
        verdict, reason = self._gate.take(stamp_ns(msg.header.stamp), self.get_clock().now().nanoseconds)
        if verdict == "act":
            return msg
        if verdict != "seen":   # "seen": nothing new since the last action, not a loss
            self.drops.add(f"frames not acted on: {verdict.replace('_', ' ')}")
        if reason:
            self.get_logger().warning(reason, throttle_duration_sec=2.0)
        return None

    def _on_tick(self) -> None:
        msg = self._take_frame()
        if msg is None:
            return
        frame = image_array(msg)
        observation = {"rgb": frame}
        if "state" in self.policy.observation_keys:
            with self._frame_lock:
                observation["state"] = self._state  # published just before this frame
                self._state_fresh = False
        started = time.perf_counter()
        action = self.policy.act(observation)
        inference = time.perf_counter() - started
        if not np.all(np.isfinite(action)):
            self.get_logger().error(f"policy returned a non-finite action {action.tolist()}: not published",
                                    throttle_duration_sec=2.0)
            return
        self.setpoint_pub.publish(setpoint_delta_msg(action, msg.header.stamp))
        self.latency_pub.publish(Float32(data=float(age_seconds(self, msg.header.stamp))))
        self.inference_pub.publish(Float32(data=float(inference)))
        if self.energy_pub.get_subscription_count() > 0 and self.policy.action_dim == 2:
            self._publish_energy(frame, action, msg)

    def _publish_energy(self, frame: np.ndarray, action: np.ndarray, msg: Image) -> None:
        try:
            xs, ys, energies = self.policy.energy_grid(None, resolution=self.config.energy_resolution)
        except (ValueError, NotImplementedError, AttributeError) as exc:  # explicit baselines have no energy
            self.get_logger().warning(f"no energy image: {exc}", once=True)
            return
        overlay = energy_overlay(frame, xs, ys, energies, action)
        self.energy_pub.publish(image_msg(overlay, msg.header.stamp, msg.header.frame_id))

    def close(self) -> None:
        self.drops.report(self.get_name())


def main(args: list[str] | None = None) -> None:
    run_node(PolicyNode, args)


if __name__ == "__main__":
    main()
