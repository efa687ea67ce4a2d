"""The policy-level env of the simulated cell: delta-xy setpoint actions at 5 Hz, each run through
the CartesianController of cell.control (20 ticks at 100 Hz, the same code the ROS controller node
runs), observation() -> {"state", "rgb"}; and make_world, the task's physical world by config.kind
(what the ROS sim node steps with joint commands)."""
from __future__ import annotations

import numpy as np

from cell.control import CartesianController, ControllerConfig
from sim.block_push import PushWorld
from sim.cell_world import CellWorld, TaskStatus
from sim.config import TaskConfig
from sim.fixture_tasks import FixtureWorld


def make_world(config: TaskConfig, controller_config: ControllerConfig | None = None) -> CellWorld:
    """The physical world of a cell task: one block and flat targets (push_*), or blocks and
    fixtures (the paper's four real-cell tasks)."""
    if config.kind == "push":
        return PushWorld(config, controller_config)
    if config.kind == "fixtures":
        return FixtureWorld(config, controller_config)
    raise ValueError(f"task {config.task!r} of kind {config.kind!r} has no cell world")


class PushEnv:
    """Delta-xy pushing env at the policy rate; every action runs through CartesianController.

    Observation "state": PushWorld.state of this env's controller setpoint. "rgb": the camera
    frame at the task's render size (only for tasks that observe pixels)."""

    def __init__(self, config: TaskConfig, controller_config: ControllerConfig | None = None):
        self.config = config
        self.world = make_world(config, controller_config)
        self.controller = CartesianController(self.world.controller_config)
        cc = self.world.controller_config
        self.ticks_per_step = round(cc.rate_hz / config.control_hz)
        if abs(self.ticks_per_step / cc.rate_hz - 1.0 / config.control_hz) > 1e-9:
            raise ValueError(f"controller rate {cc.rate_hz} Hz is not a multiple of the policy rate "
                             f"{config.control_hz} Hz")
        self.action_low = -np.full(2, cc.max_setpoint_step)
        self.action_high = np.full(2, cc.max_setpoint_step)
        self._period_ns = round(cc.period_s * 1e9)
        self._clock_origin_ns: int | None = None
        self.steps = 0
        self._tick = 0

    @property
    def max_steps(self) -> int:
        return self.config.max_steps

    def close(self) -> None:
        self.world.close()
        self.controller.ik.close()

    def reset(self, seed: int, clock_origin_ns: int | None = None) -> dict[str, np.ndarray]:
        """The scene of ``seed``; the controller runs on times tick * period from 0. With
        ``clock_origin_ns`` it runs on the ROS sim stack's clock instead: the episode's first
        frame at that instant, the controller reset one tick before it, times in integer
        nanoseconds converted as the controller node converts its stamps. Same physics, same
        arm - but t differs in its last bits from tick * period, and a contact-rich episode
        amplifies that: the origin makes an episode through ROS reproducible here bit for bit."""
        self.world.reset(seed)
        self._clock_origin_ns = clock_origin_ns
        self.steps = 0
        self._tick = 0
        self.controller.reset(t=self._time(0 if clock_origin_ns is None else -1))
        return self.observation()

    def _time(self, tick: int) -> float:
        """Controller time (s) of ``tick`` (see reset)."""
        if self._clock_origin_ns is None:
            return tick * self.world.controller_config.period_s
        return (self._clock_origin_ns + tick * self._period_ns) * 1e-9

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], bool, dict]:
        """Apply one (dx, dy) setpoint delta for one policy period. Returns (observation,
        done, info); done on success or when the horizon is reached."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (2,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be 2 finite numbers (dx, dy), got {action!r}")
        period = self.world.controller_config.period_s
        self.controller.on_setpoint_delta(action, self._time(self._tick))
        for _ in range(self.ticks_per_step):
            self._tick += 1
            joints, _ = self.controller.step(self._time(self._tick))
            self.world.apply_joint_command(joints, self._time(self._tick))
            self.world.step(period)
        self.steps += 1
        status = self.world.task_status()
        done = status.ends_episode(self.steps, self.config.max_steps)
        return self.observation(), done, {"success": status.success, "distance": status.distance,
                                          "stage": status.stage, "score": status.score}

    def state(self) -> np.ndarray:
        return self.world.state(self.controller.setpoint)

    def observation(self) -> dict[str, np.ndarray]:
        obs = {"state": self.state()}
        if "rgb" in self.config.observation_keys:
            obs["rgb"] = self.world.render_rgb(self.config.render_width, self.config.render_height)
        return obs

    def task_status(self) -> TaskStatus:
        return self.world.task_status()
