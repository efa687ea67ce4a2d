"""Scripted demonstrators: the oriented push oracle (reference block-pushing oracle, made to
detour around the block and to re-approach when the block slips) and the particle oracle
(appendix C.5). Both expose the Policy API's reset() / act(obs) so ibc-eval and ibc-data
run them like learned policies."""
from __future__ import annotations

import numpy as np

# Layout of the push state vector (sim.env.PushEnv.state).
BLOCK = slice(0, 2)
BLOCK_YAW = 2
EFFECTOR_TARGET = slice(5, 7)
TARGETS_START = 7


def episode_rng(obs: dict[str, np.ndarray]) -> np.random.Generator:
    """A generator seeded by an episode's first observation (itself a function of the env seed):
    an oracle's random choices are then the same for any number of ibc-data workers."""
    return np.random.default_rng(list(np.ascontiguousarray(obs["state"], dtype=np.float32).tobytes()))


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 1e-9 else np.array([1.0, 0.0])


def _rotate(vector: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * vector[0] - s * vector[1], s * vector[0] + c * vector[1]])


def _cap(delta: np.ndarray, max_length: float) -> np.ndarray:
    length = float(np.linalg.norm(delta))
    return delta if length <= max_length else delta * (max_length / length)


def _segment_distance(point: np.ndarray, start: np.ndarray, end: np.ndarray) -> float:
    span = end - start
    fraction = np.clip(np.dot(point - start, span) / max(np.dot(span, span), 1e-12), 0.0, 1.0)
    return float(np.linalg.norm(start + fraction * span - point))


class PushOracle:
    """Approach 5 cm behind the block on the block->target line, close to 3 cm, then push
    (aiming 1 cm behind the block centre). Re-orient (block treated as 4-way symmetric) when
    the yaw error exceeds 0.2 rad, until below 0.03 rad. Speeds as the reference (m/s):
    0.35 pushing, 0.3 approaching, 0.15 orienting, turned into metres per policy step."""

    PRE_BLOCK = 0.05
    NEXT_TO_BLOCK = 0.03
    TOUCHING = 0.01
    ORIENT_RADIUS = 0.025
    ORIENT_START, ORIENT_DONE = 0.2, 0.03        # rad
    ORIENT_GAIN = np.inf       # m/s per rad of yaw error while orienting: inf = always 0.15 m/s
    CLEARANCE = 0.045    # m: paths closer than this to the block centre detour around it
    DETOUR_RADIUS = 0.055
    SLIP_ANGLE = 0.6     # rad between pusher->block and block->target while pushing
    SLIP_DISTANCE = 0.06  # m from the block centre while pushing

    def __init__(self, control_hz: float, num_targets: int = 1, tolerance: float = 0.02,
                 waypoint_tolerance: float = 0.001, align_to_target_yaw: bool = False,
                 push_lead: float | None = None):
        """``waypoint_tolerance``: how close (m) the effector must come to the pre-block and
        next-to-block points before the next phase; an operator pointing with a mouse resolves
        1-2 mm on the table and needs a few millimetres here. ``align_to_target_yaw``: orient the
        block to the target's yaw (an insertion into a fixture) rather than to the push direction.
        ``push_lead``: while pushing, aim the pusher this far (m) ahead of the block centre, but no
        further than lands the block on the target (a faster push that stops there); None aims
        TOUCHING behind the centre, as the reference oracle does."""
        self.period = 1.0 / control_hz
        self.num_targets = num_targets
        self.tolerance = tolerance
        self.waypoint_tolerance = waypoint_tolerance
        self.align_to_target_yaw = align_to_target_yaw
        self.push_lead = push_lead
        self.observation_keys = ("state",)
        self.reset()

    def reset(self) -> None:
        self.phase = "move_to_pre_block"
        self.stage = 0

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        state = np.asarray(obs["state"], dtype=np.float64)
        block, yaw, effector = state[BLOCK], float(state[BLOCK_YAW]), state[EFFECTOR_TARGET]
        target = self._current_target(state, block)
        direction = _unit(target - block)
        facing = float(state[TARGETS_START + 3 * self.stage + 2]) if self.align_to_target_yaw \
            else float(np.arctan2(direction[1], direction[0]))
        yaw_error = facing - yaw
        yaw_error = (yaw_error + np.pi / 4) % (np.pi / 2) - np.pi / 4     # 4-way symmetric block
        delta, speed = self._phase_action(block, effector, direction, yaw_error, float(np.linalg.norm(target - block)))
        return _cap(delta, speed * self.period).astype(np.float32)

    def _current_target(self, state: np.ndarray, block: np.ndarray) -> np.ndarray:
        targets = state[TARGETS_START:TARGETS_START + 3 * self.num_targets].reshape(self.num_targets, 3)[:, :2]
        if self.stage < self.num_targets - 1 and np.linalg.norm(block - targets[self.stage]) < self.tolerance:
            self.stage += 1
            self.phase = "move_to_pre_block"
        return targets[self.stage]

    def _phase_action(self, block, effector, direction, yaw_error, remaining) -> tuple[np.ndarray, float]:
        if self.phase == "push_block" and self._slipped(block, effector, direction):
            self.phase = "move_to_pre_block"
        if self.phase in ("push_block", "move_to_block") and abs(yaw_error) > self.ORIENT_START:
            self.phase = "orient_left" if yaw_error > 0 else "orient_right"
        if self.phase == "move_to_pre_block":
            goal = block - direction * self.PRE_BLOCK
            if np.linalg.norm(goal - effector) < self.waypoint_tolerance:
                self.phase = "move_to_block"
            else:
                return self._path_around_block(block, effector, goal), 0.3
        if self.phase == "move_to_block":
            goal = block - direction * self.NEXT_TO_BLOCK
            if np.linalg.norm(goal - effector) < self.waypoint_tolerance:
                self.phase = "push_block"
            else:
                return goal - effector, 0.35
        if self.phase == "push_block":
            if self.push_lead is None:
                return block - direction * self.TOUCHING - effector, 0.35
            # The pusher's centre sits NEXT_TO_BLOCK behind the block centre while in contact.
            lead = min(self.push_lead, remaining - self.NEXT_TO_BLOCK)
            return block + direction * lead - effector, 0.35
        # Fine squaring (ORIENT_DONE far below the reference's 0.03 rad) slows down as the error
        # shrinks: at full speed a 4 cm cube turns ~5 deg a step and overshoots.
        speed = 0.15 if np.isinf(self.ORIENT_GAIN) else min(0.15, self.ORIENT_GAIN * abs(yaw_error))
        return self._orient(block, effector, yaw_error), speed

    def _orient(self, block, effector, yaw_error) -> np.ndarray:
        # Push on the block's side off-centre, walking around it, until it faces the target.
        side = 1.0 if self.phase == "orient_left" else -1.0
        if side * yaw_error < self.ORIENT_DONE:
            self.phase = "move_to_pre_block"
        spot = block + _rotate(_unit(effector - block), side * 0.2) * self.ORIENT_RADIUS
        return spot - effector

    def _slipped(self, block, effector, direction) -> bool:
        to_block = block - effector
        angle = float(np.arccos(np.clip(np.dot(_unit(to_block), direction), -1.0, 1.0)))
        return angle > self.SLIP_ANGLE or float(np.linalg.norm(to_block)) > self.SLIP_DISTANCE

    def _path_around_block(self, block, effector, goal) -> np.ndarray:
        """Straight to ``goal`` unless that passes through the block: then walk around the
        block on a circle, in the shorter direction, towards the goal's side."""
        if _segment_distance(block, effector, goal) >= self.CLEARANCE:
            return goal - effector
        here, there = effector - block, goal - block
        turn = float(np.arctan2(here[0] * there[1] - here[1] * there[0], np.dot(here, there)))
        step = np.sign(turn) * min(abs(turn), 0.3 * self.period / self.DETOUR_RADIUS)
        return block + _rotate(_unit(here), step) * self.DETOUR_RADIUS - effector


class ParticleOracle:
    """Appendix C.5: command the first goal until within ``goal_radius``, then the second."""

    def __init__(self, dim: int, goal_radius: float):
        self.dim = dim
        self.goal_radius = goal_radius
        self.observation_keys = ("state",)
        self.reset()

    def reset(self) -> None:
        self.reached_first = False

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        state = np.asarray(obs["state"], dtype=np.float64)
        n = self.dim
        position, first, second = state[:n], state[2 * n:3 * n], state[3 * n:4 * n]
        if np.linalg.norm(position - first) < self.goal_radius:
            self.reached_first = True
        return (second if self.reached_first else first).astype(np.float32)
