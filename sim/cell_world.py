"""The parts of the simulated cell every task shares: table, xArm6 + cylindrical pusher, the
D415-like camera and the joint-level interface the ROS sim node drives. A task's world
(sim.block_push.PushWorld, sim.fixture_tasks.FixtureWorld) adds its objects and its rule:

    _draw_episode()    draw the episode's object poses from self._rng (before the rebuild)
    _build_objects()   create the task's bodies (after table and arm, in a fixed order)
    _place_objects()   put them where _draw_episode said
    _update_progress() after every physics step() (multi-stage tasks)
    task_status()      TaskStatus: success, score, distance
    state(setpoint)    the task's state observation

Its arm refuses (and holds) every command the real arm's driver refuses: the same check,
cell.control.arm_limits, on the same URDF.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet
from pybullet_utils.bullet_client import BulletClient

from cell.control import ArmLimits, ControllerConfig, SafetyEnvelope, XArmIK, load_arm_limits, load_controller_config
from cell.control.robot_description import PUSHER_LINK, TIP_LINK, joint_indices, link_index, resolved_urdf_path
from sim.config import CameraConfig, TaskConfig

_TABLE_COLOR = (0.82, 0.74, 0.62, 1.0)
_ARM_COLOR = (0.92, 0.92, 0.92, 1.0)       # the real xArm6 is white (pybullet_data's is multicolour)
_PUSHER_COLOR = (0.25, 0.25, 0.28, 1.0)
_SETTLE_STEPS = 20            # physics steps after a reset so the blocks rest on the table


@dataclass(frozen=True)
class TaskStatus:
    success: bool
    distance: float            # block to the current target (m); the task's own measure of "how far"
    stage: int                 # index of the target the block is heading to
    num_targets: int
    score: float = 0.0         # partial credit in [0, 1] (1.0 = success); pushing tasks: 0 or 1

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


class CellWorld:
    """Table, arm and camera; subclasses add a task's objects (see the module docstring)."""

    def __init__(self, config: TaskConfig, controller_config: ControllerConfig | None = None):
        self.config = config
        self.controller_config = controller_config or load_controller_config()
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
        self.time = 0.0

    # -- scene -------------------------------------------------------------------------
    def _build_scene(self) -> None:
        c, physics = self._client, self.config.physics
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
        self._build_objects()

    def _build_objects(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.limits.close()
        if self._client.isConnected():
            self._client.disconnect()

    # -- episode -----------------------------------------------------------------------
    def reset(self, seed: int) -> None:
        """New episode drawn from ``seed`` alone: the same seed gives the same episode."""
        self._rng = np.random.default_rng(seed)
        self._draw_episode()
        c = self._client
        # Rebuild from scratch: contact caches and solver warm starts survive resetting poses
        # (and even restoreState), and would make an episode depend on the one before it.
        c.resetSimulation()
        self._build_scene()
        for index, value in zip(self._joints, self.start_joints):
            c.resetJointState(self.robot, index, float(value), 0.0)
        self._drive(self.start_joints)
        self.limits.reset(self.start_joints)   # placed there: the next command is checked against it
        self._place_objects()
        for _ in range(_SETTLE_STEPS):
            c.stepSimulation()
        self.time = 0.0
        self._start_episode()

    def _draw_episode(self) -> None:
        raise NotImplementedError

    def _place_objects(self) -> None:
        raise NotImplementedError

    def _start_episode(self) -> None:
        """Progress bookkeeping at the start of an episode (after the objects have settled)."""

    def _place_box(self, body: int, x: float, y: float, z: float, yaw: float) -> None:
        self._client.resetBasePositionAndOrientation(body, [x, y, z], self._client.getQuaternionFromEuler([0, 0, yaw]))
        self._client.resetBaseVelocity(body, [0, 0, 0], [0, 0, 0])

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
        then update the task's progress (e.g. the multi-target stage)."""
        for _ in range(max(1, round(dt / self.config.physics.timestep))):
            self._client.stepSimulation()
        self.time += dt
        self._update_progress()

    def _update_progress(self) -> None:
        """Task progress after a step (multi-stage tasks); nothing by default."""

    def joint_positions(self) -> np.ndarray:
        return np.array([s[0] for s in self._client.getJointStates(self.robot, list(self._joints))])

    def joint_velocities(self) -> np.ndarray:
        return np.array([s[1] for s in self._client.getJointStates(self.robot, list(self._joints))])

    # -- state ---------------------------------------------------------------------------
    def body_pose(self, body: int) -> np.ndarray:
        """A body's x, y, yaw (yaw in (-pi, pi])."""
        position, orientation = self._client.getBasePositionAndOrientation(body)
        return np.array([position[0], position[1], self._client.getEulerFromQuaternion(orientation)[2]])

    def effector_xy(self) -> np.ndarray:
        """Measured pusher tip position in the table plane."""
        return np.array(self._client.getLinkState(self.robot, self._tip, computeForwardKinematics=True)[4][:2])

    def task_status(self) -> TaskStatus:
        raise NotImplementedError

    def state(self, setpoint_xy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

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
