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
# The paper's four real-cell tasks (Table 6), as twins in the simulated cell.
FIXTURE_TASKS = ("push_red_then_green", "push_multimodal", "insert_blue", "sort_blue_from_yellow")
CELL_KINDS = ("push", "fixtures")     # tasks in the cell (arm, controller, camera), not the particle
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


Range = tuple[float, float]


@dataclass
class FixtureConfig:
    """A black fixture (the paper's hand-made wooden targets): a U of low walls around a pocket,
    open on one side, its mouth. ``block`` names the colour of block that belongs in it ("" = any
    block); ``marker`` paints a pad of that colour on the pocket floor, which is how an image tells
    whose fixture it is. Its pose: the pocket centre, and yaw = the direction out of the mouth."""
    block: str = ""
    pocket: tuple[float, float] = (0.06, 0.05)     # inner width (across the mouth), depth (m)
    x: Range = (0.3, 0.3)
    y: Range = (0.25, 0.25)
    yaw: Range = (-1.5707963267948966, -1.5707963267948966)
    marker: bool = False


@dataclass
class AreaConfig:
    """A flat target area (black mat, rim in the colour of the blocks that belong there): sorting."""
    block: str = ""
    size: tuple[float, float] = (0.16, 0.14)       # along x, along y (m)
    x: Range = (0.3, 0.3)
    y: Range = (0.25, 0.25)


@dataclass
class FixtureSceneConfig:
    """The paper's real-cell tasks (Play22 baby blocks, hand-made fixtures): coloured 4 cm cubes,
    fixtures and target areas, and the rule that scores them (sim.fixture_tasks)."""
    rule: Literal["own_fixture", "any_fixture", "insert", "sort"] = "own_fixture"
    blocks: list[str] = field(default_factory=lambda: ["red", "green"])   # colours, in state order
    block_size: float = 0.04
    block_mass: float = 0.1
    block_friction: float = 0.5
    fixture_friction: float = 0.3
    block_x: Range = (0.3, 0.5)
    block_y: Range = (-0.3, -0.08)
    block_yaw: Range = (0.0, 1.5707963267948966)    # a cube's yaw is 4-way symmetric
    min_block_separation: float = 0.08              # between block centres at reset (m)
    fixtures: list[FixtureConfig] = field(default_factory=list)
    areas: list[AreaConfig] = field(default_factory=list)
    # Draw which fixture (or area) stands where at random: the first two trade places half the time.
    swap_places: bool = True
    wall_height: float = 0.015      # below the pusher tip (0.02 m): the pusher passes over walls
    wall_thickness: float = 0.012
    # insert: "partial" = at least this fraction of the block's footprint inside the pocket.
    partial_fraction: float = 0.25

    def validate(self) -> None:
        unknown = sorted(set(self.blocks) - set(BLOCK_COLORS))
        if unknown:
            raise ValueError(f"blocks: unknown colour(s) {unknown}; known: {sorted(BLOCK_COLORS)}")
        if not self.blocks:
            raise ValueError("blocks must list at least one block")
        if self.rule == "sort" and not self.areas:
            raise ValueError("rule sort needs areas")
        if self.rule != "sort" and not self.fixtures:
            raise ValueError(f"rule {self.rule} needs fixtures")
        for fixture in self.fixtures:
            if min(fixture.pocket) < self.block_size:
                raise ValueError(f"fixture pocket {fixture.pocket} is smaller than the block ({self.block_size} m)")
        if not 0 < self.partial_fraction < 1:
            raise ValueError(f"partial_fraction must be in (0, 1), got {self.partial_fraction}")


# Block colours (RGBA), close to the Play22 kit's.
BLOCK_COLORS = {"red": (0.85, 0.19, 0.21, 1.0), "green": (0.23, 0.68, 0.3, 1.0),
                "blue": (0.2, 0.4, 0.88, 1.0), "yellow": (0.96, 0.8, 0.12, 1.0)}


@dataclass
class PhysicsConfig:
    timestep: float = 0.005               # s; 2 substeps per 100 Hz controller tick
    arm_max_force: float = 200.0          # N m per joint motor (position control)
    solver_iterations: int = 30


@dataclass
class TaskConfig:
    task: str = "push_states"
    kind: Literal["push", "fixtures", "particle"] = "push"
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
    fixture_scene: FixtureSceneConfig = field(default_factory=FixtureSceneConfig)
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
        if self.kind in CELL_KINDS:
            load_timing().check("control_hz", self.control_hz, "control_hz")
        if not set(self.observation_keys) <= {"state", "rgb"} or not self.observation_keys:
            raise ValueError(f"observation_keys must be a non-empty subset of state, rgb: {self.observation_keys}")
        if self.particle_dim < 1:
            raise ValueError("particle_dim must be >= 1")


def task_names() -> tuple[str, ...]:
    return PUSH_TASKS + FIXTURE_TASKS + ("particle_<N>d",)


def load_task_config(task: str, overrides: Sequence[str] = ()) -> TaskConfig:
    """config/sim_<task>.yaml; particle_<N>d reads config/sim_particle.yaml with particle_dim=N."""
    particle = _PARTICLE_TASK.match(task)
    if particle:
        overrides = [f"task={task}", f"particle_dim={int(particle.group(1))}", *overrides]
        return load_config(TaskConfig, share_file("config", "sim_particle.yaml"), overrides)
    if task not in PUSH_TASKS + FIXTURE_TASKS:
        raise ConfigError(f"unknown task {task!r}; known: {', '.join(task_names())}")
    return load_config(TaskConfig, share_file("config", f"sim_{task}.yaml"), overrides)
