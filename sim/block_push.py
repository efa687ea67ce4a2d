"""The paper's simulated block pushing in the twin of the cell (sim.cell_world: xArm6 +
cylindrical pusher, table, D415-like camera): one block, one or two flat targets.

PushWorld is the physical scene, stepped by raw joint commands (what the ROS sim node drives):
reset(seed), apply_joint_command(q, t), step(dt), joint_positions(), render_rgb(), task_status().
sim.env.PushEnv runs it at the policy level.
"""
from __future__ import annotations

import numpy as np
import pybullet

from cell.control import ControllerConfig
from sim.cell_world import CellWorld, TaskStatus
from sim.config import TaskConfig

_BLOCK_COLOR = (0.85, 0.19, 0.21, 1.0)
_TARGET_COLORS = ((0.23, 0.72, 0.32, 1.0), (0.28, 0.52, 0.92, 1.0))


class PushWorld(CellWorld):
    """One block and one or two flat targets (the paper's simulated pushing tasks)."""

    def __init__(self, config: TaskConfig, controller_config: ControllerConfig | None = None):
        self.num_targets = len(config.scene.targets_x)
        self.target_poses = np.zeros((self.num_targets, 3))     # x, y, yaw
        self._stage = 0
        super().__init__(config, controller_config)

    def _build_objects(self) -> None:
        c, scene = self._client, self.config.scene
        half = scene.block_size / 2
        self.block = c.createMultiBody(
            scene.block_mass, c.createCollisionShape(pybullet.GEOM_BOX, halfExtents=[half] * 3),
            c.createVisualShape(pybullet.GEOM_BOX, halfExtents=[half] * 3, rgbaColor=_BLOCK_COLOR),
            basePosition=[0.4, -0.2, half])
        c.changeDynamics(self.block, -1, lateralFriction=scene.block_friction)
        c.changeDynamics(self.table, -1, lateralFriction=scene.block_friction)
        zone = [scene.target_size / 2, scene.target_size / 2, 0.0005]
        self.targets = [c.createMultiBody(0, -1, c.createVisualShape(pybullet.GEOM_BOX, halfExtents=zone,
                                                                    rgbaColor=_TARGET_COLORS[i]))
                        for i in range(self.num_targets)]

    # -- episode -----------------------------------------------------------------------
    def _draw_episode(self) -> None:
        scene = self.config.scene
        self._block_start = (self._rng.uniform(*scene.block_x), self._rng.uniform(*scene.block_y),
                             self._rng.uniform(*scene.block_yaw))
        self.target_poses = self._sample_targets()

    def _place_objects(self) -> None:
        x, y, yaw = self._block_start
        self._place_box(self.block, x, y, self.config.scene.block_size / 2, yaw)
        for body, (x, y, yaw) in zip(self.targets, self.target_poses):
            self._client.resetBasePositionAndOrientation(body, [x, y, 0.0005],
                                                         self._client.getQuaternionFromEuler([0, 0, yaw]))

    def _start_episode(self) -> None:
        self._stage = 0

    def _sample_targets(self) -> np.ndarray:
        scene = self.config.scene
        for _ in range(1000):
            poses = np.array([[self._rng.uniform(*x), self._rng.uniform(*y), self._rng.uniform(*scene.target_yaw)]
                              for x, y in zip(scene.targets_x, scene.targets_y)])
            if len(poses) == 1 or np.linalg.norm(poses[0, :2] - poses[1, :2]) >= scene.min_target_separation:
                return poses
        raise RuntimeError("cannot place the targets apart: check scene.targets_x/targets_y")

    # -- state ---------------------------------------------------------------------------
    def block_pose(self) -> np.ndarray:
        """Block x, y, yaw (yaw in (-pi, pi])."""
        return self.body_pose(self.block)

    def state(self, setpoint_xy: np.ndarray) -> np.ndarray:
        """The task's state observation (float32): block x, y, yaw; effector (tip) x, y; effector
        target (the controller's commanded setpoint) x, y; target x, y, yaw -> 10-D; the
        multi-target task appends target 2 x, y, yaw -> 13-D (paper, appendix table 1)."""
        parts = [self.block_pose(), self.effector_xy(), np.asarray(setpoint_xy)[:2], *self.target_poses]
        return np.concatenate(parts).astype(np.float32)

    def _update_progress(self) -> None:
        while self._stage < self.num_targets - 1 and self._distance_to(self._stage) < self.config.success_tolerance:
            self._stage += 1

    def _distance_to(self, stage: int) -> float:
        return float(np.linalg.norm(self.block_pose()[:2] - self.target_poses[stage, :2]))

    def task_status(self) -> TaskStatus:
        distance = self._distance_to(self._stage)
        success = self._stage == self.num_targets - 1 and distance < self.config.success_tolerance
        return TaskStatus(success=success, distance=distance, stage=self._stage, num_targets=self.num_targets,
                          score=float(success))
