"""Scripted demonstrator of the four real-cell twins (sim.fixture_tasks), with a human's variety:
a plan of pushes, one block at a time, each run by the push oracle (sim.oracles.PushOracle) on the
10-D state of that block and its goal.

    fixtures  push the block to a point in front of the fixture's mouth, on its axis, then into
              the pocket along the axis
    insert    the same, squaring the block to the slot on the last stretch; a block that stops
              going in (jammed at the mouth, or part-way in) is pushed back out in front of the
              mouth and lined up again: the corrective nudges (every fixture task does this)
    sort      the block nearest its area first, to the free slot of its area farthest from the
              blocks; a block knocked out of its area is pushed back in

Variety: the multimodal task draws its order and assignment (red or green first, which fixture
each) per episode, so a dataset shows all four; every task draws the approach gap and pushing
speed per episode. The draws are seeded by the episode's first observation (itself a function of
the env seed: sim.oracles.episode_rng), so a dataset is the same for any number of ibc-data workers.
"""
from __future__ import annotations

from collections import deque
from itertools import permutations
from dataclasses import dataclass

import numpy as np

from sim.config import FixtureSceneConfig
from sim.fixture_tasks import in_area, pocket_fraction
from sim.oracles import PushOracle, episode_rng, segment_distance


@dataclass(frozen=True)
class RuleSettings:
    """How the demonstrator pushes under one scene rule (see the module docstring)."""
    waypoint_tolerance: float   # m: see PushOracle(waypoint_tolerance)
    transit_speed: float        # m/s between pushes: see PushOracle(transit_speed)
    turned_contact: bool        # see PushOracle(turned_contact)
    orient: tuple[float, float]  # (start, done) rad of squaring to the fixture; (inf, inf): never
    funnel_slack: float         # m: once pushing in, only a block this far off the funnel lines up again
    mouth_play: float           # m: extra lateral play allowed to a block entering the pocket
    square_on_the_way: bool     # square to the fixture's yaw on the way to it, not only on its axis
    funnel: tuple[float, float] = (0.004, 0.12)   # (width m, slope): see FixtureOracle._in_funnel
    lookahead: float = 0.03     # m: see FixtureOracle._on_axis
    final_push_speed: float = 0.35   # m/s of the pushes within FINAL_STRETCH of the pocket, on its axis
    final_orient: tuple[float, float, float] | None = None   # (start, done rad, gain m/s/rad) of the
    # squaring on the axis within FINAL_STRETCH of the pocket; None: ``orient`` there too


# A 6 cm pocket takes a 4 cm block turned by up to ~0.4 rad; far from it a block faces the push
# direction (a push on a face runs straight), lined up on the axis it is squared to the fixture.
# Pushed in slowly: at full speed a block spins on the mouth's corners or rides over the back wall.
LOOSE_FIXTURE = RuleSettings(waypoint_tolerance=0.002, transit_speed=0.5, turned_contact=True, orient=(0.3, 0.1),
                             funnel_slack=0.005, mouth_play=0.0, square_on_the_way=False, final_push_speed=0.12)
# 1 mm of clearance: squared to the slot all the way, roughly on the way and to ~0.7 deg on the
# last stretch (slowly: at full speed a 4 cm cube turns ~5 deg a step); a turned block's contact
# point is not chased (it is squared before it is pushed). Pushed in only from within 1 mm (plus
# 1 % of the distance) of the axis, in a short lookahead: a block that comes to the mouth a few
# mm off the axis catches a corner on a wall's end, and backing it off spins it.
INSERT = RuleSettings(waypoint_tolerance=0.003, transit_speed=0.3, turned_contact=False, orient=(0.2, 0.05),
                      funnel_slack=0.015, mouth_play=0.01, square_on_the_way=True, funnel=(0.001, 0.01), lookahead=0.015,
                      final_orient=(0.012, 0.004, 0.5))
# An area takes a block at any yaw.
SORT = RuleSettings(waypoint_tolerance=0.002, transit_speed=0.5, turned_contact=True, orient=(np.inf, np.inf),
                    funnel_slack=0.0, mouth_play=0.0, square_on_the_way=False)
SETTINGS = {"own_fixture": LOOSE_FIXTURE, "any_fixture": LOOSE_FIXTURE, "insert": INSERT, "sort": SORT}


@dataclass
class Push:
    block: int
    place: int          # index into the fixtures, then areas
    slot: int = 0       # sort: which of the area's four slots


class FixtureOracle:
    APPROACH_GAP = (0.035, 0.055)    # m between the block and the mouth before pushing it in
    PUSH_LEAD = 0.02                 # m: see PushOracle(push_lead)
    ON_AXIS = 0.008                  # m from the pre-mouth point: lined up again after backing off
    STALL_STEPS, STALL_DISTANCE = 15, 0.003    # see _stalled
    CLEAR_PATH = 0.06                # m: see _path_is_clear
    FINAL_STRETCH = 0.1              # m from the pocket centre: see RuleSettings.final_orient
    SLOTS = np.array([[-0.035, 0.03], [0.035, 0.03], [-0.035, -0.03], [0.035, -0.03]])   # area frame, far row first

    def __init__(self, scene: FixtureSceneConfig, control_hz: float):
        self.scene = scene
        self.settings = SETTINGS[scene.rule]
        self.control_hz = control_hz
        self.observation_keys = ("state",)
        self.num_blocks = len(scene.blocks)
        self.num_places = len(scene.fixtures) + len(scene.areas)
        self.reset()

    def reset(self) -> None:
        self._rng: np.random.Generator | None = None
        self._plan: list[Push] = []
        self._push: Push | None = None
        self._into_pocket = False
        self._backing_off = False
        self._progress: deque[float] = deque(maxlen=self.STALL_STEPS)
        self._pusher = self._new_pusher()

    def _new_pusher(self) -> PushOracle:
        settings = self.settings
        # Square to the fixture's axis, not to the push direction (which swings near the pocket).
        pusher = PushOracle(self.control_hz, 1, tolerance=0.01, waypoint_tolerance=settings.waypoint_tolerance,
                            align_to_target_yaw=True, push_lead=self.PUSH_LEAD, turned_contact=settings.turned_contact,
                            transit_speed=settings.transit_speed, stop_at_workspace_edge=True)
        self._set_orient(pusher, final=False)
        return pusher

    def _set_orient(self, pusher: PushOracle, final: bool) -> None:
        start, done, gain = self.settings.final_orient if final else (*self.settings.orient, np.inf)
        pusher.ORIENT_START, pusher.ORIENT_DONE, pusher.ORIENT_GAIN = start, done, gain

    # -- state ---------------------------------------------------------------------------
    def _parse(self, state: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = self.num_blocks
        blocks = state[:3 * n].reshape(n, 3)
        setpoint = state[3 * n + 2:3 * n + 4]
        places = state[3 * n + 4:3 * n + 4 + 3 * self.num_places].reshape(self.num_places, 3)
        return blocks, setpoint, places

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        state = np.asarray(obs["state"], dtype=np.float64)
        blocks, setpoint, places = self._parse(state)
        if self._rng is None:
            self._rng = episode_rng(obs)
            self._gap = self._rng.uniform(*self.APPROACH_GAP)
            self._plan = self._first_plan(blocks, places)
        if self._push is None or self._done(self._push, blocks, places):
            self._push = self._next_push(blocks, places)
            self._into_pocket = self._backing_off = False
            self._progress.clear()
            self._pusher.reset()
        if self._push is None:      # all placed: hold still
            return np.zeros(2, dtype=np.float32)
        goal = self._goal(self._push, blocks, places)
        self._pusher.align_to_target_yaw = self._into_pocket or self.settings.square_on_the_way
        final = self._into_pocket and float(np.linalg.norm(blocks[self._push.block, :2] - places[self._push.place, :2])) < self.FINAL_STRETCH
        if self.settings.final_orient is not None:
            self._set_orient(self._pusher, final)
        self._pusher.push_speed = self.settings.final_push_speed if final else PushOracle.PUSH_SPEED
        block = blocks[self._push.block].copy()
        if self._entering(self._push, blocks, places):
            block[2] = goal[2]      # the walls square a block that is entering: no turning it now
        # On the way to a push, walk around the other blocks too: driving one into the pushed
        # block moves both, and a knock spills a block already placed.
        self._pusher.obstacles = np.delete(blocks[:, :2], self._push.block, axis=0)
        local = np.concatenate([block, setpoint, setpoint, goal])
        return self._pusher.act({"state": local})

    # -- plan ----------------------------------------------------------------------------
    def _first_plan(self, blocks: np.ndarray, places: np.ndarray) -> list[Push]:
        if self.scene.rule == "sort":
            return []                       # chosen block by block (_next_sort)
        if self.scene.rule == "any_fixture":
            # Every order and assignment, drawn per episode; but, as a person would, not one whose
            # pushes run through the other block or a fixture filled first (unless all do).
            plans = [[Push(block, fixture) for block, fixture in zip(order, fixtures)]
                     for order in permutations(range(self.num_blocks))
                     for fixtures in permutations(range(len(self.scene.fixtures)), self.num_blocks)]
            drawn = [plans[i] for i in self._rng.permutation(len(plans))]
            return next((plan for plan in drawn if self._path_is_clear(plan, blocks, places)), drawn[0])
        # own_fixture / insert: blocks in config order (red, then green), each to its own fixture
        return [Push(i, next(j for j, f in enumerate(self.scene.fixtures) if f.block in ("", colour)))
                for i, colour in enumerate(self.scene.blocks)]

    def _path_is_clear(self, plan: list[Push], blocks: np.ndarray, places: np.ndarray) -> bool:
        """No push of ``plan`` drives its block straight at a block still waiting for its own
        push or at a fixture an earlier push filled (within CLEAR_PATH of the straight line)."""
        for i, push in enumerate(plan):
            start, end = blocks[push.block, :2], places[push.place, :2]
            obstacles = [blocks[later.block, :2] for later in plan[i + 1:]] + [places[earlier.place, :2] for earlier in plan[:i]]
            if any(segment_distance(point, start, end) < self.CLEAR_PATH for point in obstacles):
                return False
        return True

    def _next_push(self, blocks: np.ndarray, places: np.ndarray) -> Push | None:
        if self.scene.rule == "sort":
            return self._next_sort(blocks, places)
        for push in self._plan:
            if not self._in_pocket(push, blocks, places):
                return push
        return None

    def _next_sort(self, blocks: np.ndarray, places: np.ndarray) -> Push | None:
        areas = places[len(self.scene.fixtures):]
        waiting = []
        for i, colour in enumerate(self.scene.blocks):
            area = next(a for a, spec in enumerate(self.scene.areas) if spec.block == colour)
            if not in_area(blocks[i], areas[area], self.scene.areas[area].size):
                waiting.append((float(np.linalg.norm(blocks[i, :2] - areas[area, :2])), i, area))
        if not waiting:
            return None
        _, block, area = min(waiting)
        points = [self._slot_point(areas[area], s) for s in range(len(self.SLOTS))]
        free = [s for s, point in enumerate(points)
                if not any(np.linalg.norm(blocks[j, :2] - point) < 0.03 for j in range(self.num_blocks))] or [0]
        # Far row first, but not a slot whose straight push runs into another block (it would be
        # pushed along, out of the area and beyond).
        others = [blocks[j, :2] for j in range(self.num_blocks) if j != block]
        clear = [s for s in free if all(segment_distance(other, blocks[block, :2], points[s]) >= self.CLEAR_PATH
                                        for other in others)]
        return Push(block, len(self.scene.fixtures) + area, (clear or free)[0])

    def _slot_point(self, area: np.ndarray, slot: int) -> np.ndarray:
        # The areas lie on the far side (+y) of the blocks: the far row is at +y.
        return area[:2] + self.SLOTS[slot]

    # -- one push ------------------------------------------------------------------------
    def _goal(self, push: Push, blocks: np.ndarray, places: np.ndarray) -> np.ndarray:
        place = places[push.place]
        if self.scene.rule == "sort":
            return np.array([*self._slot_point(place, push.slot), 0.0])
        pocket = self.scene.fixtures[push.place].pocket
        mouth = np.array([np.cos(place[2]), np.sin(place[2])])
        front = place[:2] + mouth * (pocket[1] / 2 + self.scene.block_size / 2 + self._gap)
        block = blocks[push.block, :2]
        if self._backing_off:
            if np.linalg.norm(block - front) > self.ON_AXIS:
                return np.array([*front, place[2]])
            self._backing_off = False      # lined up again: square it and push it in afresh
            self._pusher.reset()
        # Hysteresis: once pushing in, only a block well off the funnel lines up again.
        slack = self.settings.funnel_slack if self._into_pocket else 0.0
        into_pocket = self._in_funnel(block - place[:2], mouth, pocket, slack)
        if into_pocket != self._into_pocket:
            self._into_pocket = into_pocket
            self._pusher.reset()
            self._progress.clear()
        distance = float(np.linalg.norm(block - place[:2]))
        at_mouth = distance <= pocket[1] / 2 + self.scene.block_size / 2 + 0.01
        if not (into_pocket and at_mouth):
            self._progress.clear()
        elif self._stalled(distance):
            # Jammed at (or in) the mouth: a corrective nudge - push it back out in front of the
            # mouth from the pocket side (the pusher passes over the walls) and line up again.
            self._backing_off, self._into_pocket = True, False
            self._pusher.reset()
            return np.array([*front, place[2]])
        return np.array([*(self._on_axis(block, place, mouth) if into_pocket else front), place[2]])

    def _on_axis(self, block: np.ndarray, place: np.ndarray, mouth: np.ndarray) -> np.ndarray:
        """Pure pursuit of the fixture's axis: aim ``lookahead`` further in along the axis than the
        block is, so a block off the axis is steered onto it (its lateral offset shrinks by e per
        ``lookahead`` pushed) before it reaches the mouth; no further in than the pocket centre.
        The goal lies in that heading as far away as the pocket centre, so the push oracle's
        lead (which stops the push at its goal) is not cut short by the lookahead."""
        along = float((block - place[:2]) @ mouth)
        heading = place[:2] + mouth * max(along - self.settings.lookahead, 0.0) - block
        length = float(np.linalg.norm(heading))
        return block + heading * (max(along, length) / length) if length > 1e-9 else place[:2]

    def _stalled(self, distance: float) -> bool:
        """At the mouth, the block has come less than STALL_DISTANCE closer to the pocket centre
        over the last STALL_STEPS policy steps."""
        self._progress.append(distance)
        if len(self._progress) < self.STALL_STEPS:
            return False
        stalled = self._progress[0] - min(self._progress) < self.STALL_DISTANCE
        if stalled:
            self._progress.clear()
        return stalled

    def _in_funnel(self, offset: np.ndarray, mouth: np.ndarray, pocket: tuple[float, float], slack: float) -> bool:
        """The block (offset from the pocket centre) is in front of the mouth and close enough to
        the axis to be pushed straight in: laterally within the funnel's width plus its slope times
        the distance along the axis, or already partly in the pocket."""
        along = float(offset @ mouth)
        lateral = abs(float(offset[0] * mouth[1] - offset[1] * mouth[0]))
        if along <= pocket[1] / 2 + self.scene.block_size / 2:      # entering or in the pocket
            return lateral <= (pocket[0] - self.scene.block_size) / 2 + self.settings.mouth_play + slack
        width, slope = self.settings.funnel
        return lateral <= width + slope * (along - pocket[1] / 2) + slack

    def _entering(self, push: Push, blocks: np.ndarray, places: np.ndarray) -> bool:
        if self.scene.rule == "sort":
            return False
        return pocket_fraction(blocks[push.block], self.scene.block_size, places[push.place],
                               self.scene.fixtures[push.place].pocket) > 0.0

    def _in_pocket(self, push: Push, blocks: np.ndarray, places: np.ndarray) -> bool:
        spec = self.scene.fixtures[push.place]
        return pocket_fraction(blocks[push.block], self.scene.block_size, places[push.place], spec.pocket) >= 1.0

    def _done(self, push: Push, blocks: np.ndarray, places: np.ndarray) -> bool:
        if self.scene.rule == "sort":
            slot = self._slot_point(places[push.place], push.slot)
            return float(np.linalg.norm(blocks[push.block, :2] - slot)) < 0.012
        return self._in_pocket(push, blocks, places)
