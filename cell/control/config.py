"""Configuration of the Cartesian controller (config/controller.yaml), shared by the sim env
and the ROS controller node. Load with ``load_controller_config()``."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ibc_core.config_io import ConfigError, load_config
from cell.paths import share_file
from cell.timing import load_timing, timing_default


def require_ranges(section: str, **ranges: tuple[float, float]) -> None:
    """ValueError naming ``section.name`` unless every range is [low, high] with low < high."""
    for name, (low, high) in ranges.items():
        if not low < high:
            raise ValueError(f"{section}.{name} must be [low, high] with low < high, got {[low, high]}")


@dataclass
class WorkspaceConfig:
    """Box the pusher tip may move in (metres, robot base frame) and its fixed height."""
    x: tuple[float, float] = (0.15, 0.7)
    y: tuple[float, float] = (-0.5, 0.5)
    height: float = 0.02            # tip above the table: cannot press into it
    # Horizontal distance from the arm's base axis: the xArm6 with the pusher pointing down
    # reaches ~0.71 m at this height (singular there) and folds onto itself inside ~0.14 m.
    radius: tuple[float, float] = (0.2, 0.65)

    def validate(self) -> None:
        require_ranges("workspace", x=self.x, y=self.y, radius=self.radius)
        if self.radius[0] < 0:
            raise ValueError(f"workspace.radius must be non-negative, got {list(self.radius)}")
        if not 0.0 < self.height < 0.5:
            raise ValueError(f"workspace.height must be in (0, 0.5) m, got {self.height}")


@dataclass
class IKConfig:
    urdf: str = "xarm6_pusher.urdf"          # in the share dir's urdf/
    tip_link: str = "pusher_tip"
    # Tool pointing straight down (rotation of pi about y), quaternion x, y, z, w. Only the
    # tool axis is constrained: the spin about it is free (the pusher is a cylinder).
    tip_orientation: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 0.0)
    rest_joints: tuple[float, ...] = (-0.9, 0.7, -1.1, 0.0, 0.4, 0.0)
    max_iterations: int = 50
    residual_threshold: float = 1e-5      # m; iterate until the tip is this close
    tolerance: float = 0.001               # m; larger IK residuals are reported as failures

    def validate(self) -> None:
        if len(self.rest_joints) != 6:
            raise ValueError(f"ik.rest_joints must hold 6 values, got {len(self.rest_joints)}")
        if self.max_iterations < 1 or self.tolerance <= 0:
            raise ValueError("ik.max_iterations must be >= 1 and ik.tolerance > 0")


@dataclass
class ControllerConfig:
    # Both from config/timing.yaml (the one owner); a controller YAML may still set them, but only
    # to the same values (validate): joint command rate, and the policy period over which each
    # setpoint is reached.
    rate_hz: float = timing_default("controller_rate_hz")
    setpoint_period_s: float = timing_default("control_period_s")
    max_setpoint_step: float = 0.1           # m per setpoint and axis (the env's action limit)
    max_joint_step: float = 0.03             # rad per cycle (3 rad/s at 100 Hz; xArm max 3.14 rad/s)
    start_xy: tuple[float, float] = (0.3, -0.4)
    limits_file: str = "arm_limits.yaml"     # the arm's hard limits (cell/control/arm_limits.py)
    workspace: WorkspaceConfig = field(default_factory=WorkspaceConfig)
    ik: IKConfig = field(default_factory=IKConfig)

    def validate(self) -> None:
        load_timing().check("rate_hz", self.rate_hz, "controller_rate_hz")
        load_timing().check("setpoint_period_s", self.setpoint_period_s, "control_period_s")
        if self.max_setpoint_step <= 0 or self.max_joint_step <= 0:
            raise ValueError("max_setpoint_step and max_joint_step must be positive")
        (x0, x1), (y0, y1) = self.workspace.x, self.workspace.y
        if not (x0 <= self.start_xy[0] <= x1 and y0 <= self.start_xy[1] <= y1):
            raise ValueError(f"start_xy {list(self.start_xy)} lies outside the workspace")

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate_hz


def load_controller_config(source: str | Path | Mapping[str, Any] | None = None,
                           overrides: Sequence[str] = ()) -> ControllerConfig:
    """config/controller.yaml from the share dir unless another file or mapping is given. An error
    names the file: the controller node and the tools take any controller YAML they are given."""
    source = share_file("config", "controller.yaml") if source is None else source
    try:
        return load_config(ControllerConfig, source, overrides)
    except ConfigError as exc:
        if isinstance(source, Mapping) or str(source) in str(exc):
            raise
        raise ConfigError(f"{source}: {exc}") from exc


def controller_config_path(name: str) -> Path:
    """The file a node's config_file parameter names: empty = the installed config/controller.yaml;
    a name that is neither absolute nor a file here = that name in the installed config/."""
    if not name:
        return share_file("config", "controller.yaml")
    path = Path(name)
    return path if path.is_absolute() or path.exists() else share_file("config", name)
