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


def segment_distance(point: np.ndarray, start: np.ndarray, end: np.ndarray) -> float:
    span = end - start
    fraction = np.clip(np.dot(point - start, span) / max(np.dot(span, span), 1e-12), 0.0, 1.0)
    return float(np.linalg.norm(start + fraction * span - point))


class PushOracle:
    """Approach 5 cm behind the block on the block->target line, close to 3 cm, then push
    (aiming 1 cm behind the block centre). Re-orient (block treated as 4-way symmetric) when
    the yaw error exceeds 0.2 rad, until below 0.03 rad. Speeds as the reference (m/s):
    0.35 pushing, 0.3 approaching, 0.15 orienting, turned into metres per policy step."""

    PRE_BLOCK = 0.05
    NEXT_TO_BLOCK = 0.03       # m: the pusher (1 cm radius) touching a 4 cm cube face on
    BLOCK_HALF_EDGE = 0.02
    TOUCHING = 0.01
    ORIENT_RADIUS = 0.025
    ORIENT_START, ORIENT_DONE = 0.2, 0.03        # rad
    ORIENT_GAIN = np.inf       # m/s per rad of yaw error while orienting: inf = always 0.15 m/s
    CLEARANCE = 0.045    # m: paths closer than this to the block centre detour around it
    DETOUR_RADIUS = 0.055
    OBSTACLE_STEP = 0.5  # rad round an obstacle's detour circle per move (chord 0.97 radius from it)
    SLIP_ANGLE = 0.6     # rad between pusher->block and block->target while pushing
    SLIP_DISTANCE = 0.06  # m from the block centre while pushing
    PUSH_SPEED = 0.35    # m/s

    def __init__(self, control_hz: float, num_targets: int = 1, tolerance: float = 0.02,
                 waypoint_tolerance: float = 0.001, align_to_target_yaw: bool = False,
                 push_lead: float | None = None, turned_contact: bool = False, transit_speed: float = 0.3,
                 stop_at_workspace_edge: bool = False):
        """``waypoint_tolerance``: how close (m) the effector must come to the pre-block and
        next-to-block points before the next phase; an operator pointing with a mouse resolves
        1-2 mm on the table and needs a few millimetres here. ``align_to_target_yaw``: orient the
        block to the target's yaw (an insertion into a fixture) rather than to the push direction.
        ``push_lead``: while pushing, aim the pusher this far (m) ahead of the block centre, but no
        further than lands the block on the target (a faster push that stops there); None aims
        TOUCHING behind the centre, as the reference oracle does. ``turned_contact``: a block
        turned against the push direction meets the pusher further out than NEXT_TO_BLOCK (at
        its corner: 1 cm more); stop there, not at a point inside the block (which the reference
        oracle chases, pushing the block on a corner and spinning it). ``transit_speed``: m/s
        of the moves to the pre-block point, in free space (the arm's tip limit is 0.75).
        ``stop_at_workspace_edge``: a waypoint beyond the workspace's edge (a block near the edge,
        approached from outside) counts as reached when the controller's clamped setpoint stopped
        moving towards it; the reference oracle pushes against the edge until the episode ends."""
        self.period = 1.0 / control_hz
        self.num_targets = num_targets
        self.tolerance = tolerance
        self.waypoint_tolerance = waypoint_tolerance
        self.align_to_target_yaw = align_to_target_yaw
        self.push_lead = push_lead
        self.turned_contact = turned_contact
        self.transit_speed = transit_speed
        self.stop_at_workspace_edge = stop_at_workspace_edge
        self.observation_keys = ("state",)
        # Other blocks (x, y rows) the moves to the pre-block point walk around, as the block.
        self.obstacles = np.zeros((0, 2))
        self.push_speed = self.PUSH_SPEED     # m/s; a fixture demonstrator slows its last stretch
        self.reset()

    def reset(self) -> None:
        self.phase = "move_to_pre_block"
        self.stage = 0
        self._last_move: tuple[np.ndarray, float] | None = None   # (effector, step asked) of the last act

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        state = np.asarray(obs["state"], dtype=np.float64)
        block, yaw, effector = state[BLOCK], float(state[BLOCK_YAW]), state[EFFECTOR_TARGET]
        target = self._current_target(state, block)
        direction = _unit(target - block)
        facing = float(state[TARGETS_START + 3 * self.stage + 2]) if self.align_to_target_yaw \
            else float(np.arctan2(direction[1], direction[0]))
        yaw_error = facing - yaw
        yaw_error = (yaw_error + np.pi / 4) % (np.pi / 2) - np.pi / 4     # 4-way symmetric block
        next_to = self.NEXT_TO_BLOCK + (self._corner_excess(yaw, direction) if self.turned_contact else 0.0)
        delta, speed = self._phase_action(block, effector, direction, yaw_error,
                                          float(np.linalg.norm(target - block)), next_to)
        action = _cap(delta, speed * self.period)
        self._last_move = (effector.copy(), float(np.linalg.norm(action)))
        return action.astype(np.float32)

    def _reached(self, goal: np.ndarray, effector: np.ndarray) -> bool:
        if np.linalg.norm(goal - effector) < self.waypoint_tolerance:
            return True
        # Held at the workspace's edge: asked for 2 mm or more, moved less than 0.5 mm.
        return self.stop_at_workspace_edge and self._last_move is not None \
            and self._last_move[1] >= 0.002 and float(np.linalg.norm(effector - self._last_move[0])) < 0.0005

    def _current_target(self, state: np.ndarray, block: np.ndarray) -> np.ndarray:
        targets = state[TARGETS_START:TARGETS_START + 3 * self.num_targets].reshape(self.num_targets, 3)[:, :2]
        if self.stage < self.num_targets - 1 and np.linalg.norm(block - targets[self.stage]) < self.tolerance:
            self.stage += 1
            self.phase = "move_to_pre_block"
        return targets[self.stage]

    def _corner_excess(self, yaw: float, direction: np.ndarray) -> float:
        """How much further than its half edge (2 cm) the block reaches towards the pusher
        coming along ``direction``: 0 face on, 2 cm * (sqrt(2) - 1) on a corner."""
        turn = yaw - float(np.arctan2(direction[1], direction[0]))
        return self.BLOCK_HALF_EDGE * (abs(np.cos(turn)) + abs(np.sin(turn)) - 1.0)

    def _phase_action(self, block, effector, direction, yaw_error, remaining, next_to) -> tuple[np.ndarray, float]:
        if self.phase == "push_block" and self._slipped(block, effector, direction):
            self.phase = "move_to_pre_block"
        if self.phase in ("push_block", "move_to_block") and abs(yaw_error) > self.ORIENT_START:
            self.phase = "orient_left" if yaw_error > 0 else "orient_right"
        if self.phase == "move_to_pre_block":
            goal = block - direction * self.PRE_BLOCK
            if self._reached(goal, effector):
                self.phase = "move_to_block"
            else:
                return self._path_around_block(block, effector, goal), self.transit_speed
        if self.phase == "move_to_block":
            goal = block - direction * next_to
            if self._reached(goal, effector):
                self.phase = "push_block"
            else:
                return goal - effector, 0.35
        if self.phase == "push_block":
            if self.push_lead is None:
                return block - direction * self.TOUCHING - effector, self.push_speed
            # The pusher's centre sits NEXT_TO_BLOCK behind the block centre while in contact.
            lead = min(self.push_lead, remaining - self.NEXT_TO_BLOCK)
            return block + direction * lead - effector, self.push_speed
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
        """Straight to ``goal`` unless that passes through the block (or an obstacle not at the
        goal): then walk around it on a circle, in the shorter direction, towards the goal's side."""
        # An obstacle counts when the path comes nearer to it than CLEARANCE and than the pusher
        # is now, and the goal is not next to it (then the goal's block is pushed past it).
        in_the_way = [block] if segment_distance(block, effector, goal) < self.CLEARANCE else []
        in_the_way += [centre for centre in self.obstacles
                       if segment_distance(centre, effector, goal) < min(self.CLEARANCE, np.linalg.norm(effector - centre) - 0.002)
                       and np.linalg.norm(goal - centre) >= self.CLEARANCE]
        if not in_the_way:
            return goal - effector
        path = _unit(goal - effector)
        centre = min(in_the_way, key=lambda point: float(np.dot(point - effector, path)))   # the first met
        here, there = effector - centre, goal - centre
        turn = float(np.arctan2(here[0] * there[1] - here[1] * there[0], np.dot(here, there)))
        if centre is block:
            step = np.sign(turn) * min(abs(turn), self.transit_speed * self.period / self.DETOUR_RADIUS)
        else:
            # Onto the circle at a tangent, then round it in steps whose chords keep clear of the
            # obstacle (the block's own detour, above, is the reference oracle's).
            distance = float(np.linalg.norm(here))
            tangent = np.arccos(min(1.0, self.DETOUR_RADIUS / distance)) if distance > self.DETOUR_RADIUS else 0.0
            step = np.sign(turn) * min(abs(turn), max(tangent, self.OBSTACLE_STEP))
        return centre + _rotate(_unit(here), step) * self.DETOUR_RADIUS - effector


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
