"""PyBullet twin of the pushing cell: xArm6 + cylindrical pusher, table, block, target zones
and a D415-like camera.

Two layers share one world:
  PushWorld  the physical scene, stepped by raw joint commands (what the ROS sim node drives):
             reset(seed), apply_joint_command(q, t), step(dt), joint_positions(), render_rgb(),
             task_status(). Its arm refuses (and holds) every command the real arm's driver
             refuses: the same check, cell.control.arm_limits, on the same URDF.
  PushEnv    the policy-level env: delta-xy actions at 5 Hz, each run through the
             CartesianController of cell.control (20 ticks at 100 Hz, the same code the ROS
             controller node runs), observation() -> {"state", "rgb"}.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet
from pybullet_utils.bullet_client import BulletClient

from cell.control import (ArmLimits, CartesianController, ControllerConfig, SafetyEnvelope, XArmIK,
                             load_arm_limits, load_controller_config)
from cell.control.robot_description import PUSHER_LINK, TIP_LINK, joint_indices, link_index, resolved_urdf_path
from sim.config import CameraConfig, TaskConfig

_TABLE_COLOR = (0.82, 0.74, 0.62, 1.0)
_ARM_COLOR = (0.92, 0.92, 0.92, 1.0)       # the real xArm6 is white (pybullet_data's is multicolour)
_PUSHER_COLOR = (0.25, 0.25, 0.28, 1.0)
_BLOCK_COLOR = (0.85, 0.19, 0.21, 1.0)
_TARGET_COLORS = ((0.23, 0.72, 0.32, 1.0), (0.28, 0.52, 0.92, 1.0))
_SETTLE_STEPS = 20            # physics steps after a reset so the block rests on the table


@dataclass(frozen=True)
class TaskStatus:
    success: bool
    distance: float            # block to the current target (m)
    stage: int                 # index of the target the block is heading to
    num_targets: int

    def ends_episode(self, steps: int, max_steps: int) -> bool:
        """An episode ends on success or after max_steps policy periods (PushEnv and the sim node)."""
        return self.success or steps >= max_steps


def camera_matrices(camera: CameraConfig, width: int, height: int) -> tuple[list[float], list[float]]:
    """OpenGL view and projection matrices of a pinhole camera with fx = fy = f * width.
    The vertical field of view depends only on the aspect ratio, so a smaller render of the
    same aspect ratio sees exactly the same view."""
    view = pybullet.computeViewMatrix(list(camera.eye), list(camera.look_at), list(camera.up))
    focal = camera.focal_fraction * width
    fov_y = math.degrees(2.0 * math.atan(0.5 * height / focal))
    projection = pybullet.computeProjectionMatrixFOV(fov_y, width / height, camera.near, camera.far)
    return view, projection


class PushWorld:
    def __init__(self, config: TaskConfig, controller_config: ControllerConfig | None = None):
        self.config = config
        self.controller_config = controller_config or load_controller_config()
        self.num_targets = len(config.scene.targets_x)
        self._client = BulletClient(connection_mode=pybullet.DIRECT)
        self._build_scene()
        # Start pose of the arm: the IK solution of the controller's start setpoint (the clamped
        # start_xy, where the controller's command starts each episode).
        self.start_target = SafetyEnvelope(self.controller_config).clamp_target(self.controller_config.start_xy)
        ik = XArmIK(self.controller_config.ik)
        self.start_joints = ik.solve(self.start_target, seed=np.array(self.controller_config.ik.rest_joints))
        ik.close()
        self.limits = ArmLimits(load_arm_limits(self.controller_config.limits_file))
        self.limits.reset(self.start_joints)
        self.refused = 0                   # joint commands the arm refused (the driver would too)
        self.last_refusal = ""
        self._rng = np.random.default_rng(0)
        self.target_poses = np.zeros((self.num_targets, 3))     # x, y, yaw
        self._stage = 0
        self.time = 0.0

    # -- scene -------------------------------------------------------------------------
    def _build_scene(self) -> None:
        c, scene, physics = self._client, self.config.scene, self.config.physics
        c.setGravity(0, 0, -9.81)
        c.setPhysicsEngineParameter(fixedTimeStep=physics.timestep, numSolverIterations=physics.solver_iterations,
                                    deterministicOverlappingPairs=1)
        self.table = c.createMultiBody(
            0, c.createCollisionShape(pybullet.GEOM_BOX, halfExtents=[0.6, 0.8, 0.025]),
            c.createVisualShape(pybullet.GEOM_BOX, halfExtents=[0.6, 0.8, 0.025], rgbaColor=_TABLE_COLOR),
            basePosition=[0.45, 0, -0.025])
        self.robot = c.loadURDF(str(resolved_urdf_path(self.controller_config.ik.urdf)), useFixedBase=True,
                                flags=pybullet.URDF_USE_SELF_COLLISION_EXCLUDE_ALL_PARENTS)
        self._joints = joint_indices(c, self.robot)
        self._tip = link_index(c, self.robot, TIP_LINK)
        pusher = link_index(c, self.robot, PUSHER_LINK)
        for link in range(-1, c.getNumJoints(self.robot)):
            c.setCollisionFilterPair(self.robot, self.table, link, -1, 0)   # the base stands on it
            c.changeVisualShape(self.robot, link, rgbaColor=_PUSHER_COLOR if link == pusher else _ARM_COLOR)
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

    def close(self) -> None:
        self.limits.close()
        if self._client.isConnected():
            self._client.disconnect()

    # -- episode -----------------------------------------------------------------------
    def reset(self, seed: int) -> None:
        """New episode drawn from ``seed`` alone: the same seed gives the same episode."""
        self._rng = np.random.default_rng(seed)
        scene = self.config.scene
        block_xy = [self._rng.uniform(*scene.block_x), self._rng.uniform(*scene.block_y)]
        block_yaw = self._rng.uniform(*scene.block_yaw)
        self.target_poses = self._sample_targets()
        c = self._client
        # Rebuild from scratch: contact caches and solver warm starts survive resetting poses
        # (and even restoreState), and would make an episode depend on the one before it.
        c.resetSimulation()
        self._build_scene()
        for index, value in zip(self._joints, self.start_joints):
            c.resetJointState(self.robot, index, float(value), 0.0)
        self._drive(self.start_joints)
        self.limits.reset(self.start_joints)   # placed there: the next command is checked against it
        c.resetBasePositionAndOrientation(self.block, [*block_xy, scene.block_size / 2],
                                          c.getQuaternionFromEuler([0, 0, block_yaw]))
        c.resetBaseVelocity(self.block, [0, 0, 0], [0, 0, 0])
        for body, (x, y, yaw) in zip(self.targets, self.target_poses):
            c.resetBasePositionAndOrientation(body, [x, y, 0.0005], c.getQuaternionFromEuler([0, 0, yaw]))
        for _ in range(_SETTLE_STEPS):
            c.stepSimulation()
        self._stage = 0
        self.time = 0.0

    def _sample_targets(self) -> np.ndarray:
        scene = self.config.scene
        for _ in range(1000):
            poses = np.array([[self._rng.uniform(*x), self._rng.uniform(*y), self._rng.uniform(*scene.target_yaw)]
                              for x, y in zip(scene.targets_x, scene.targets_y)])
            if len(poses) == 1 or np.linalg.norm(poses[0, :2] - poses[1, :2]) >= scene.min_target_separation:
                return poses
        raise RuntimeError("cannot place the targets apart: check scene.targets_x/targets_y")

    # -- joint-level interface (ROS sim node) --------------------------------------------
    def apply_joint_command(self, q: np.ndarray, t: float) -> str | None:
        """Position targets for the six arm joints, commanded for time ``t`` (s; held until the
        next command) - if the arm's limits accept them, as the real arm's driver would. Returns
        None, or why the command was refused (the arm then holds its last accepted command)."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (6,) or not np.all(np.isfinite(q)):
            raise ValueError(f"joint command must be 6 finite positions, got {q!r}")
        reason = self.limits.submit(q, t)
        if reason is not None:
            self.refused += 1
            self.last_refusal = reason
            return reason
        self._drive(q)
        return None

    def _drive(self, q: np.ndarray) -> None:
        force = self.config.physics.arm_max_force
        self._client.setJointMotorControlArray(self.robot, list(self._joints), pybullet.POSITION_CONTROL,
                                               targetPositions=q.tolist(), forces=[force] * 6)

    def step(self, dt: float) -> None:
        """Advance physics by ``dt`` seconds (rounded to whole physics steps, at least one),
        then update the task's progress (multi-target stage)."""
        for _ in range(max(1, round(dt / self.config.physics.timestep))):
            self._client.stepSimulation()
        self.time += dt
        self._update_stage()

    def joint_positions(self) -> np.ndarray:
        return np.array([s[0] for s in self._client.getJointStates(self.robot, list(self._joints))])

    def joint_velocities(self) -> np.ndarray:
        return np.array([s[1] for s in self._client.getJointStates(self.robot, list(self._joints))])

    # -- state ---------------------------------------------------------------------------
    def block_pose(self) -> np.ndarray:
        """Block x, y, yaw (yaw in (-pi, pi])."""
        position, orientation = self._client.getBasePositionAndOrientation(self.block)
        return np.array([position[0], position[1], self._client.getEulerFromQuaternion(orientation)[2]])

    def effector_xy(self) -> np.ndarray:
        """Measured pusher tip position in the table plane."""
        return np.array(self._client.getLinkState(self.robot, self._tip, computeForwardKinematics=True)[4][:2])

    def state(self, setpoint_xy: np.ndarray) -> np.ndarray:
        """The task's state observation (float32): block x, y, yaw; effector (tip) x, y; effector
        target (the controller's commanded setpoint) x, y; target x, y, yaw -> 10-D; the
        multi-target task appends target 2 x, y, yaw -> 13-D (paper, appendix table 1)."""
        parts = [self.block_pose(), self.effector_xy(), np.asarray(setpoint_xy)[:2], *self.target_poses]
        return np.concatenate(parts).astype(np.float32)

    def _update_stage(self) -> None:
        while self._stage < self.num_targets - 1 and self._distance_to(self._stage) < self.config.success_tolerance:
            self._stage += 1

    def _distance_to(self, stage: int) -> float:
        return float(np.linalg.norm(self.block_pose()[:2] - self.target_poses[stage, :2]))

    def task_status(self) -> TaskStatus:
        distance = self._distance_to(self._stage)
        success = self._stage == self.num_targets - 1 and distance < self.config.success_tolerance
        return TaskStatus(success=success, distance=distance, stage=self._stage, num_targets=self.num_targets)

    # -- camera --------------------------------------------------------------------------
    def render_rgb(self, width: int | None = None, height: int | None = None) -> np.ndarray:
        """RGB uint8 [H, W, 3] from the D415-like camera (default: the camera's 640x360)."""
        camera = self.config.camera
        width, height = width or camera.width, height or camera.height
        view, projection = camera_matrices(camera, width, height)
        _, _, rgba, _, _ = self._client.getCameraImage(width, height, view, projection,
                                                       renderer=pybullet.ER_TINY_RENDERER,
                                                       flags=pybullet.ER_NO_SEGMENTATION_MASK)
        return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3].copy()


class PushEnv:
    """Delta-xy pushing env at the policy rate; every action runs through CartesianController.

    Observation "state": PushWorld.state of this env's controller setpoint. "rgb": the camera
    frame at the task's render size (only for tasks that observe pixels)."""

    def __init__(self, config: TaskConfig, controller_config: ControllerConfig | None = None):
        self.config = config
        self.world = PushWorld(config, controller_config)
        self.controller = CartesianController(self.world.controller_config)
        cc = self.world.controller_config
        self.ticks_per_step = round(cc.rate_hz / config.control_hz)
        if abs(self.ticks_per_step / cc.rate_hz - 1.0 / config.control_hz) > 1e-9:
            raise ValueError(f"controller rate {cc.rate_hz} Hz is not a multiple of the policy rate "
                             f"{config.control_hz} Hz")
        self.action_low = -np.full(2, cc.max_setpoint_step)
        self.action_high = np.full(2, cc.max_setpoint_step)
        self.steps = 0
        self._tick = 0

    @property
    def max_steps(self) -> int:
        return self.config.max_steps

    def close(self) -> None:
        self.world.close()
        self.controller.ik.close()

    def reset(self, seed: int) -> dict[str, np.ndarray]:
        self.world.reset(seed)
        self.controller.reset(t=0.0)
        self.steps = 0
        self._tick = 0
        return self.observation()

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], bool, dict]:
        """Apply one (dx, dy) setpoint delta for one policy period. Returns (observation,
        done, info); done on success or when the horizon is reached."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (2,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be 2 finite numbers (dx, dy), got {action!r}")
        period = self.world.controller_config.period_s
        self.controller.on_setpoint_delta(action, self._tick * period)
        for _ in range(self.ticks_per_step):
            self._tick += 1
            joints, _ = self.controller.step(self._tick * period)
            self.world.apply_joint_command(joints, self._tick * period)
            self.world.step(period)
        self.steps += 1
        status = self.world.task_status()
        done = status.ends_episode(self.steps, self.config.max_steps)
        return self.observation(), done, {"success": status.success, "distance": status.distance,
                                          "stage": status.stage}

    def state(self) -> np.ndarray:
        return self.world.state(self.controller.setpoint)

    def observation(self) -> dict[str, np.ndarray]:
        obs = {"state": self.state()}
        if "rgb" in self.config.observation_keys:
            obs["rgb"] = self.world.render_rgb(self.config.render_width, self.config.render_height)
        return obs

    def task_status(self) -> TaskStatus:
        return self.world.task_status()
