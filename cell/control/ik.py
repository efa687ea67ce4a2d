"""Kinematic-only xArm6 + pusher in a private PyBullet DIRECT client: inverse and forward
kinematics of the pusher tip, with the tool held pointing straight down.

The inverse is damped least squares on PyBullet's tip Jacobian, warm-started from the
previous solution. The pusher is a cylinder, so only its axis direction is constrained
(5 constraints, 6 joints): the free spin about the axis keeps the solver away from the wrist
singularity near the base and gives minimal joint motion. It converges to micrometres in a
few iterations, where PyBullet's calculateInverseKinematics (full 6-D pose) stalls at
millimetres near the workspace edges and is several times slower.
"""
from __future__ import annotations

import numpy as np
import pybullet
from pybullet_utils.bullet_client import BulletClient

from cell.control.config import IKConfig
from cell.control.robot_description import joint_indices, link_index, resolved_urdf_path

_DAMPING = 1e-3            # DLS damping (lambda^2), small: the working region is far from singular
_ANGLE_TOLERANCE = 1e-4    # rad


class IKError(RuntimeError):
    """No joint solution places the tip within tolerance of the requested point."""


class XArmIK:
    def __init__(self, config: IKConfig | None = None):
        self.config = config or IKConfig()
        self._client = BulletClient(connection_mode=pybullet.DIRECT)
        self._robot = self._client.loadURDF(str(resolved_urdf_path(self.config.urdf)), useFixedBase=True)
        self._joints = joint_indices(self._client, self._robot)
        self._tip = link_index(self._client, self._robot, self.config.tip_link)
        info = [self._client.getJointInfo(self._robot, j) for j in self._joints]
        self.lower = np.array([i[8] for i in info])
        self.upper = np.array([i[9] for i in info])
        self._target_axis = _rotation(self.config.tip_orientation)[:, 2]   # tool axis (link z)
        self._last_solution = np.array(self.config.rest_joints, dtype=np.float64)

    def close(self) -> None:
        if self._client.isConnected():
            self._client.disconnect()

    def forward(self, q: np.ndarray) -> np.ndarray:
        """Tip position xyz for joint positions q[6]."""
        return self._tip_pose(q)[0]

    def solve(self, xyz: np.ndarray, seed: np.ndarray | None = None) -> np.ndarray:
        """Joint positions q[6] placing the tip at xyz, axis pointing down, starting from ``seed``
        (default: the previous solution, which keeps consecutive solutions on one branch).
        Raises IKError, and keeps the previous solution, if the residual exceeds tolerance."""
        target = np.asarray(xyz, dtype=np.float64)
        q = (self._last_solution if seed is None else np.asarray(seed, dtype=np.float64)).copy()
        for _ in range(self.config.max_iterations):
            position, rotation = self._tip_pose(q)
            axis = rotation[:, 2]
            error = np.concatenate([target - position, np.cross(axis, self._target_axis)])
            if np.linalg.norm(error[:3]) < self.config.residual_threshold and \
                    np.linalg.norm(error[3:]) < _ANGLE_TOLERANCE:
                break
            jacobian = self._jacobian(q)
            # Spin about the tool axis changes nothing that matters: remove it from the task.
            jacobian[3:] = (np.eye(3) - np.outer(axis, axis)) @ jacobian[3:]
            step = jacobian.T @ np.linalg.solve(jacobian @ jacobian.T + _DAMPING * np.eye(6), error)
            q = np.clip(q + step, self.lower, self.upper)
        residual = float(np.linalg.norm(self.forward(q) - target))
        if residual > self.config.tolerance:
            raise IKError(f"IK residual {residual * 1000:.1f} mm for target {np.round(target, 4).tolist()}")
        self._last_solution = q
        return q.copy()

    def _set_joints(self, q: np.ndarray) -> None:
        for index, value in zip(self._joints, q):
            self._client.resetJointState(self._robot, index, float(value))

    def _tip_pose(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._set_joints(q)
        state = self._client.getLinkState(self._robot, self._tip, computeForwardKinematics=True)
        return np.array(state[4]), _rotation(state[5])

    def _jacobian(self, q: np.ndarray) -> np.ndarray:
        zeros = [0.0] * len(q)
        linear, angular = self._client.calculateJacobian(
            self._robot, self._tip, [0.0, 0.0, 0.0], [float(v) for v in q], zeros, zeros)
        return np.vstack([np.array(linear), np.array(angular)])


def _rotation(quaternion_xyzw) -> np.ndarray:
    return np.array(pybullet.getMatrixFromQuaternion(list(quaternion_xyzw))).reshape(3, 3)

