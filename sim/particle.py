"""N-D particle environment (paper appendix C.5).

A point mass at q in R^N follows a PD controller towards the commanded position setpoint
(the action): qdd = kp (setpoint - q) - kd qd, integrated at 200 Hz, 10 integration steps per
action (20 Hz control, as the reference). Start and both goals are uniform in [0, 1]^N. The
agent must reach goal 1 (within goal_radius), then goal 2; the episode succeeds when goal 1
was reached and the particle is within goal_radius of goal 2 (the episode ends there).

Observation "state" (4N, float32): position, velocity, goal 1, goal 2.
"""
from __future__ import annotations

import numpy as np

from sim.config import TaskConfig


class ParticleEnv:
    DT = 0.005
    KP = 10.0
    KD = 5.0

    def __init__(self, config: TaskConfig):
        self.config = config
        self.dim = config.particle_dim
        self.substeps = round(1.0 / (config.control_hz * self.DT))
        self.action_low = np.zeros(self.dim)
        self.action_high = np.ones(self.dim)
        self.reset(0)

    @property
    def max_steps(self) -> int:
        return self.config.max_steps

    def close(self) -> None:
        """Nothing to release (same interface as the PyBullet envs)."""

    def reset(self, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        self.position = rng.uniform(0.0, 1.0, self.dim)
        self.velocity = np.zeros(self.dim)
        self.goals = rng.uniform(0.0, 1.0, (2, self.dim))
        self.reached_first = False
        self.steps = 0
        self._update_progress()
        return self.observation()

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], bool, dict]:
        setpoint = np.asarray(action, dtype=np.float64)
        if setpoint.shape != (self.dim,) or not np.all(np.isfinite(setpoint)):
            raise ValueError(f"action must be {self.dim} finite numbers, got {action!r}")
        setpoint = np.clip(setpoint, self.action_low, self.action_high)
        for _ in range(self.substeps):
            acceleration = self.KP * (setpoint - self.position) - self.KD * self.velocity
            self.position = self.position + self.velocity * self.DT
            self.velocity = self.velocity + acceleration * self.DT
            self._update_progress()
        self.steps += 1
        status = self.task_status()
        done = status["success"] or self.steps >= self.config.max_steps
        return self.observation(), done, {**status, "score": float(status["success"])}

    def _update_progress(self) -> None:
        if np.linalg.norm(self.position - self.goals[0]) < self.config.particle_goal_radius:
            self.reached_first = True

    def task_status(self) -> dict:
        distance = float(np.linalg.norm(self.position - self.goals[int(self.reached_first)]))
        success = self.reached_first and distance < self.config.particle_goal_radius
        return {"success": success, "distance": distance, "stage": int(self.reached_first)}

    def observation(self) -> dict[str, np.ndarray]:
        return {"state": np.concatenate([self.position, self.velocity, *self.goals]).astype(np.float32)}
