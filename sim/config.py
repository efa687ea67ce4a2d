"""Task configuration of the simulated cell (config/sim_<task>.yaml) as dataclasses."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Sequence

from ibc_core.config_io import ConfigError, load_config
from ibc_core.data.preprocess import ImageSpec
from cell.paths import share_file
from cell.timing import load_timing, timing_default

PUSH_TASKS = ("push_states", "push_multi_states", "push_pixels")
_PARTICLE_TASK = re.compile(r"^particle_(\d+)d$")


@dataclass
class CameraConfig:
    """RealSense D415-like colour camera over the table (pinhole, no distortion).

    Default intrinsics are the D415 colour stream at 640x360 (69.4 x 42.5 deg field of view):
    fx = fy = 0.722 * width. Rendering at a smaller size with the same field of view gives
    the same picture at lower resolution, which is what data generation uses."""
    eye: tuple[float, float, float] = (0.8, 0.0, 0.75)        # camera position (m, arm base frame)
    look_at: tuple[float, float, float] = (0.38, 0.0, 0.0)
    up: tuple[float, float, float] = (-1.0, 0.0, 0.0)       # the robot at the top of the image
    focal_fraction: float = 0.722                            # fx = fy = focal_fraction * width
    width: int = 640
    height: int = 360
    near: float = 0.05
    far: float = 5.0

    def validate(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.focal_fraction <= 0:
            raise ValueError("camera width, height and focal_fraction must be positive")
        if not 0 < self.near < self.far:
            raise ValueError("camera must have 0 < near < far")


@dataclass
class SceneConfig:
    """Objects and the reset distribution (reference block-pushing task)."""
    block_size: float = 0.04                        # cube edge (m)
    block_mass: float = 0.1
    block_friction: float = 0.5                     # block-table and block-pusher
    target_size: float = 0.06                       # drawn target square (m)
    block_x: tuple[float, float] = (0.3, 0.5)
    block_y: tuple[float, float] = (-0.35, -0.05)
    block_yaw: tuple[float, float] = (0.0, 3.141592653589793)
    # Target i is drawn from targets_x[i], targets_y[i], yaw pi +- pi/6 (reference); the
    # multi-target task has two (block to target 1, then to target 2).
    targets_x: list[tuple[float, float]] = field(default_factory=lambda: [(0.3, 0.5)])
    targets_y: list[tuple[float, float]] = field(default_factory=lambda: [(0.05, 0.35)])
    target_yaw: tuple[float, float] = (2.6179938779914944, 3.665191429188092)
    min_target_separation: float = 0.15

    def validate(self) -> None:
        if len(self.targets_x) != len(self.targets_y) or not 1 <= len(self.targets_x) <= 2:
            raise ValueError("targets_x and targets_y must list the same 1 or 2 ranges")


@dataclass
class PhysicsConfig:
    timestep: float = 0.005               # s; 2 substeps per 100 Hz controller tick
    arm_max_force: float = 200.0          # N m per joint motor (position control)
    solver_iterations: int = 30


@dataclass
class TaskConfig:
    task: str = "push_states"
    kind: Literal["push", "particle"] = "push"
    max_steps: int = 80                   # policy steps (5 Hz) per episode
    success_tolerance: float = 0.02       # m, block-target distance (reference EBM configs)
    # Push tasks run at the cell's control rate (config/timing.yaml); a push config may repeat it,
    # only the same. The particle tasks are no cell: their YAML sets their own rate.
    control_hz: float = timing_default("control_hz")
    observation_keys: tuple[str, ...] = ("state",)
    # Pixel tasks: frames are rendered at render_width x render_height (same field of view as
    # the 640x360 camera) and stored preprocessed with image_spec.
    render_width: int = 640
    render_height: int = 360
    image_spec: ImageSpec = field(default_factory=ImageSpec)
    camera: CameraConfig = field(default_factory=CameraConfig)
    scene: SceneConfig = field(default_factory=SceneConfig)
    physics: PhysicsConfig = field(default_factory=PhysicsConfig)
    # Particle tasks (appendix C.5).
    particle_dim: int = 2
    particle_goal_radius: float = 0.05
    # Demonstrations from a noisy oracle (IRvS experiments): Gaussian noise of this standard
    # deviation, as a fraction of the action limit, is added to every oracle action. 0 = exact oracle.
    oracle_noise: float = 0.0

    def validate(self) -> None:
        if self.oracle_noise < 0:
            raise ValueError(f"oracle_noise must be >= 0, got {self.oracle_noise}")
        if self.max_steps < 1 or self.success_tolerance <= 0 or self.control_hz <= 0:
            raise ValueError("max_steps, success_tolerance and control_hz must be positive")
        if self.kind == "push":
            load_timing().check("control_hz", self.control_hz, "control_hz")
        if not set(self.observation_keys) <= {"state", "rgb"} or not self.observation_keys:
            raise ValueError(f"observation_keys must be a non-empty subset of state, rgb: {self.observation_keys}")
        if self.particle_dim < 1:
            raise ValueError("particle_dim must be >= 1")


def task_names() -> tuple[str, ...]:
    return PUSH_TASKS + ("particle_<N>d",)


def load_task_config(task: str, overrides: Sequence[str] = ()) -> TaskConfig:
    """config/sim_<task>.yaml; particle_<N>d reads config/sim_particle.yaml with particle_dim=N."""
    particle = _PARTICLE_TASK.match(task)
    if particle:
        overrides = [f"task={task}", f"particle_dim={int(particle.group(1))}", *overrides]
        return load_config(TaskConfig, share_file("config", "sim_particle.yaml"), overrides)
    if task not in PUSH_TASKS:
        raise ConfigError(f"unknown task {task!r}; known: {', '.join(task_names())}")
    return load_config(TaskConfig, share_file("config", f"sim_{task}.yaml"), overrides)
