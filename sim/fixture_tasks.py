"""Twins of the paper's four real-cell tasks (Table 6; appendix C.3: Play22 baby blocks, black
hand-made fixtures, the xArm6 with its cylindrical pusher, a D415 over the table):

    push_red_then_green    the red block into the red-marked fixture, then the green into its own
    push_multimodal        red and green each into either fixture, in either order
    insert_blue            the blue block into a fixture with 1 mm clearance on each side
    sort_blue_from_yellow  4 blue and 4 yellow blocks into the blue-rimmed and yellow-rimmed areas

A fixture is a U of low walls (1.5 cm: the pusher, 2 cm above the table, passes over them; a 4 cm
block cannot) around a rectangular pocket, open on its mouth side. Scoring is geometric, on the
block's square footprint (a 9 x 9 grid of points over it, in the pocket's frame):

    in a fixture       every footprint point inside the pocket (within 0.5 mm)
    partial insertion  at least ``partial_fraction`` (a quarter) of the footprint inside the pocket
                       and not all of it: the block has entered the mouth, which with 1 mm of
                       clearance it can only do square to the slot and centred in it
    in an area         the block's centre inside the area's rectangle

Score: own_fixture / any_fixture 1.0 when every fixture holds a block that may go there, else 0
(the paper: "1.0 if both blocks in target"); insert 1.0 full, 0.5 partial; sort 1/8 per block in
the area of its colour.

State (float32, the oracles' input and stored for analysis; the policies see only the image):
block i x, y, yaw for every block (config order), effector x, y, setpoint x, y, then x, y, yaw of
every fixture and area (config order; yaw of an area is 0).
"""
from __future__ import annotations

import itertools

import numpy as np
import pybullet

from cell.control import ControllerConfig
from sim.cell_world import CellWorld, TaskStatus
from sim.config import BLOCK_COLORS, FixtureSceneConfig, TaskConfig

_FIXTURE_COLOR = (0.08, 0.08, 0.09, 1.0)      # spray-painted black wood
_MAT_COLOR = (0.1, 0.1, 0.11, 1.0)
_RIM = 0.012                                   # coloured rim of a target area (m)
_INSIDE_TOLERANCE = 0.0005                     # m: contact, not penetration, decides "inside"
_FOOTPRINT_GRID = 9


def footprint_points(pose: np.ndarray, size: float) -> np.ndarray:
    """A square block's footprint as a grid of points in the table plane: [_FOOTPRINT_GRID**2, 2]."""
    offsets = np.linspace(-size / 2, size / 2, _FOOTPRINT_GRID)
    local = np.array(list(itertools.product(offsets, offsets)))
    return local @ _rotation(pose[2]).T + pose[:2]


def pocket_fraction(block_pose: np.ndarray, block_size: float, pocket_pose: np.ndarray,
                    pocket: tuple[float, float]) -> float:
    """Fraction of the block's footprint inside a fixture's pocket (width across the mouth,
    depth along yaw)."""
    local = (footprint_points(block_pose, block_size) - pocket_pose[:2]) @ _rotation(pocket_pose[2])
    depth, width = pocket[1] / 2 + _INSIDE_TOLERANCE, pocket[0] / 2 + _INSIDE_TOLERANCE
    inside = (np.abs(local[:, 0]) <= depth) & (np.abs(local[:, 1]) <= width)
    return float(inside.mean())


def in_area(block_pose: np.ndarray, area_pose: np.ndarray, size: tuple[float, float]) -> bool:
    offset = np.abs(np.asarray(block_pose[:2]) - area_pose[:2])
    return bool(offset[0] <= size[0] / 2 and offset[1] <= size[1] / 2)


def _rotation(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s], [s, c]])


class FixtureWorld(CellWorld):
    """Coloured blocks, fixtures and target areas in the cell; see the module docstring."""

    def __init__(self, config: TaskConfig, controller_config: ControllerConfig | None = None):
        self.scene = config.fixture_scene
        places = len(self.scene.fixtures) + len(self.scene.areas)
        self.block_starts = np.zeros((len(self.scene.blocks), 3))
        self.place_poses = np.zeros((places, 3))      # fixtures, then areas: x, y, yaw
        super().__init__(config, controller_config)

    # -- scene -------------------------------------------------------------------------
    def _build_objects(self) -> None:
        c, scene = self._client, self.scene
        half = scene.block_size / 2
        self.blocks = []
        for colour in scene.blocks:
            block = c.createMultiBody(
                scene.block_mass, c.createCollisionShape(pybullet.GEOM_BOX, halfExtents=[half] * 3),
                c.createVisualShape(pybullet.GEOM_BOX, halfExtents=[half] * 3, rgbaColor=BLOCK_COLORS[colour]),
                basePosition=[0.4, -0.2, half])
            c.changeDynamics(block, -1, lateralFriction=scene.block_friction)
            self.blocks.append(block)
        c.changeDynamics(self.table, -1, lateralFriction=scene.block_friction)
        self.fixtures = [self._build_fixture(fixture.pocket, fixture.block if fixture.marker else "")
                         for fixture in scene.fixtures]
        self.areas = [self._build_area(area.size, area.block) for area in scene.areas]

    def _build_fixture(self, pocket: tuple[float, float], marker: str) -> int:
        """One static body: back wall and two side walls around the pocket (frame: pocket centre,
        +x out of the mouth), and a pad of the marker colour on the pocket floor."""
        c, scene = self._client, self.scene
        width, depth = pocket
        t, h = scene.wall_thickness, scene.wall_height
        walls = [([t / 2, width / 2 + t, h / 2], [-depth / 2 - t / 2, 0.0, h / 2]),
                 ([(depth + t) / 2, t / 2, h / 2], [-t / 2, width / 2 + t / 2, h / 2]),
                 ([(depth + t) / 2, t / 2, h / 2], [-t / 2, -width / 2 - t / 2, h / 2])]
        extents, positions = [w[0] for w in walls], [w[1] for w in walls]
        colours = [_FIXTURE_COLOR] * 3
        if marker:
            extents.append([depth / 2 - 0.004, width / 2 - 0.004, 0.0005])
            positions.append([0.0, 0.0, 0.0005])
            colours.append(BLOCK_COLORS[marker])
        collision = c.createCollisionShapeArray([pybullet.GEOM_BOX] * 3, halfExtents=extents[:3],
                                                collisionFramePositions=positions[:3])
        visual = c.createVisualShapeArray([pybullet.GEOM_BOX] * len(extents), halfExtents=extents,
                                          visualFramePositions=positions, rgbaColors=colours)
        body = c.createMultiBody(0, collision, visual, basePosition=[0.3, 0.25, 0.0])
        c.changeDynamics(body, -1, lateralFriction=scene.fixture_friction)
        return body

    def _build_area(self, size: tuple[float, float], colour: str) -> int:
        """A flat mat, rimmed in the colour of the blocks that belong there (visual only)."""
        c = self._client
        sx, sy = size[0] / 2, size[1] / 2
        extents = [[sx, sy, 0.0004], [sx, _RIM / 2, 0.0006], [sx, _RIM / 2, 0.0006],
                   [_RIM / 2, sy, 0.0006], [_RIM / 2, sy, 0.0006]]
        positions = [[0, 0, 0], [0, sy - _RIM / 2, 0], [0, -sy + _RIM / 2, 0], [sx - _RIM / 2, 0, 0],
                     [-sx + _RIM / 2, 0, 0]]
        visual = c.createVisualShapeArray([pybullet.GEOM_BOX] * 5, halfExtents=extents, visualFramePositions=positions,
                                          rgbaColors=[_MAT_COLOR] + [BLOCK_COLORS[colour]] * 4)
        return c.createMultiBody(0, -1, visual, basePosition=[0.3, 0.25, 0.0006])

    # -- episode -----------------------------------------------------------------------
    def _draw_episode(self) -> None:
        scene, rng = self.scene, self._rng
        places = [(p.x, p.y, p.yaw) for p in scene.fixtures] + [(a.x, a.y, (0.0, 0.0)) for a in scene.areas]
        poses = np.array([[rng.uniform(*x), rng.uniform(*y), rng.uniform(*yaw)] for x, y, yaw in places])
        if scene.swap_places and len(poses) >= 2 and rng.uniform() < 0.5:
            poses[[0, 1]] = poses[[1, 0]]
        self.place_poses = poses
        self.block_starts = self._draw_block_starts()

    def _draw_block_starts(self) -> np.ndarray:
        scene, rng = self.scene, self._rng
        starts: list[np.ndarray] = []
        for _ in range(10_000):
            candidate = np.array([rng.uniform(*scene.block_x), rng.uniform(*scene.block_y), rng.uniform(*scene.block_yaw)])
            if all(np.linalg.norm(candidate[:2] - s[:2]) >= scene.min_block_separation for s in starts):
                starts.append(candidate)
                if len(starts) == len(scene.blocks):
                    return np.array(starts)
        raise RuntimeError("cannot place the blocks apart: check fixture_scene.block_x/block_y/min_block_separation")

    def _place_objects(self) -> None:
        z = self.scene.block_size / 2
        for block, (x, y, yaw) in zip(self.blocks, self.block_starts):
            self._place_box(block, x, y, z, yaw)
        heights = [0.0] * len(self.fixtures) + [0.0006] * len(self.areas)    # mats lie just above the table
        for body, (x, y, yaw), z in zip(self.fixtures + self.areas, self.place_poses, heights):
            self._client.resetBasePositionAndOrientation(body, [x, y, z], self._client.getQuaternionFromEuler([0, 0, yaw]))

    # -- state and score -----------------------------------------------------------------
    def block_poses(self) -> np.ndarray:
        return np.array([self.body_pose(block) for block in self.blocks])

    def state(self, setpoint_xy: np.ndarray) -> np.ndarray:
        parts = [self.block_poses().ravel(), self.effector_xy(), np.asarray(setpoint_xy)[:2], self.place_poses.ravel()]
        return np.concatenate(parts).astype(np.float32)

    def task_status(self) -> TaskStatus:
        score, placed, distance = score_blocks(self.scene, self.block_poses(), self.place_poses)
        return TaskStatus(success=score >= 1.0, distance=distance, stage=placed, num_targets=len(self.blocks),
                          score=score)


def score_blocks(scene: FixtureSceneConfig, blocks: np.ndarray, places: np.ndarray) -> tuple[float, int, float]:
    """(score, blocks where they belong, mean distance from each block to the nearest place it may
    go (m)) for block poses [n, 3] and place poses [fixtures + areas, 3]."""
    fixtures = places[:len(scene.fixtures)]
    areas = places[len(scene.fixtures):]
    colours = scene.blocks
    if scene.rule == "sort":
        correct = [any(in_area(pose, area, spec.size) for area, spec in zip(areas, scene.areas) if spec.block == colour)
                   for pose, colour in zip(blocks, colours)]
        goals = [[area for area, spec in zip(areas, scene.areas) if spec.block == colour] for colour in colours]
        return sum(correct) / len(blocks), sum(correct), _mean_nearest(blocks, goals)
    fractions = np.array([[pocket_fraction(pose, scene.block_size, fixture, spec.pocket)
                           for fixture, spec in zip(fixtures, scene.fixtures)] for pose in blocks])
    allowed = np.array([[spec.block in ("", colour) for spec in scene.fixtures] for colour in colours])
    full = (fractions >= 1.0) & allowed
    goals = [[fixture for fixture, ok in zip(fixtures, row) if ok] for row in allowed]
    distance = _mean_nearest(blocks, goals)
    if scene.rule == "insert":
        if full.any():
            return 1.0, 1, distance
        return (0.5 if ((fractions >= scene.partial_fraction) & allowed).any() else 0.0), 0, distance
    # Every fixture holds one allowed block (a pocket holds only one block).
    filled = int(full.any(axis=0).sum())
    return float(filled == len(scene.fixtures)), filled, distance


def _mean_nearest(blocks: np.ndarray, goals: list[list[np.ndarray]]) -> float:
    return float(np.mean([min(np.linalg.norm(pose[:2] - goal[:2]) for goal in allowed)
                          for pose, allowed in zip(blocks, goals)]))
