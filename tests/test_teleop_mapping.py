"""Teleop logic without ROS: pixel <-> table homographies (calibration clicks, the sim camera
model checked against a real PyBullet render) and the pointer -> setpoint commander."""
from __future__ import annotations

import numpy as np
import pytest

from cell.control.config import load_controller_config
from cell.control.envelope import SafetyEnvelope
from cell.teleop.commander import KeyBindings, TeleopCommander
from cell.teleop.mapping import CalibrationError, LookAtCamera, TableHomography, workspace_corners
from cell.teleop.window import draw_overlay


def test_calibration_from_clicks_round_trips_and_survives_yaml(tmp_path):
    truth = np.array([[0.001, 0.0002, 0.1], [0.0001, -0.0012, 0.4], [0.00001, 0.00002, 1.0]])
    table = np.array(workspace_corners((0.15, 0.7), (-0.5, 0.5)))
    inverse = np.linalg.inv(truth)
    clicks = [(inverse @ [x, y, 1])[:2] / (inverse @ [x, y, 1])[2] for x, y in table]
    homography = TableHomography.from_points(clicks, table, (640, 360))
    homography.save(tmp_path / "calib.yaml", clicks, table)
    loaded = TableHomography.load(tmp_path / "calib.yaml")
    for xy in [(0.3, -0.2), (0.6, 0.4), (0.42, 0.0)]:
        uv = loaded.to_pixel(xy)
        np.testing.assert_allclose(loaded.to_table(uv), xy, atol=1e-9)
        # A half-size frame of the same view maps the same point.
        np.testing.assert_allclose(loaded.to_table(uv / 2, (320, 180)), xy, atol=1e-9)


def test_calibration_errors_are_clear(tmp_path):
    with pytest.raises(CalibrationError, match="need >= 4"):
        TableHomography.from_points([(0, 0), (1, 0), (1, 1)], [(0, 0), (1, 0), (1, 1)], (10, 10))
    with pytest.raises(CalibrationError, match="does not exist"):
        TableHomography.load(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("pixel_to_table: [[1, 2], [3, 4]]\nimage_size: [1, 1]\n")
    with pytest.raises(CalibrationError, match="3x3"):
        TableHomography.load(tmp_path / "bad.yaml")


def test_sim_camera_model_matches_the_pybullet_render():
    """Put a red marker on the table at known xy, render it with the sim's camera, find the
    marker's centroid in the image and map it back: the camera model is the renderer's."""
    import pybullet

    from sim.cell_world import camera_matrices
    from sim.config import load_task_config

    cam = load_task_config("push_pixels").camera
    width, height = 320, 180
    model = LookAtCamera(cam.eye, cam.look_at, cam.up, cam.focal_fraction * width, width, height)
    homography = model.table_homography(0.0, workspace_corners((0.15, 0.7), (-0.5, 0.5)))
    client = pybullet.connect(pybullet.DIRECT)
    try:
        plane = pybullet.createVisualShape(pybullet.GEOM_BOX, halfExtents=[2, 2, 0.001],
                                           rgbaColor=[1, 1, 1, 1], physicsClientId=client)
        pybullet.createMultiBody(0, baseVisualShapeIndex=plane, basePosition=[0, 0, -0.001], physicsClientId=client)
        marker = pybullet.createVisualShape(pybullet.GEOM_CYLINDER, radius=0.012, length=0.0005,
                                            rgbaColor=[1, 0, 0, 1], physicsClientId=client)
        body = pybullet.createMultiBody(0, baseVisualShapeIndex=marker, physicsClientId=client)
        view, projection = camera_matrices(cam, width, height)
        for xy in [(0.3, -0.3), (0.55, 0.25), (0.45, 0.0), (0.2, 0.4)]:
            pybullet.resetBasePositionAndOrientation(body, [xy[0], xy[1], 0.0], [0, 0, 0, 1], physicsClientId=client)
            image = pybullet.getCameraImage(width, height, view, projection, renderer=pybullet.ER_TINY_RENDERER,
                                            physicsClientId=client)[2]
            rgb = np.asarray(image, dtype=np.uint8)[:, :, :3]
            red = (rgb[:, :, 0] > 150) & (rgb[:, :, 1] < 80) & (rgb[:, :, 2] < 80)
            assert red.sum() > 5, f"marker at {xy} not visible"
            v, u = np.nonzero(red)
            projected = model.project(np.array([[xy[0], xy[1], 0.0]]))[0]
            np.testing.assert_allclose(projected, (u.mean(), v.mean()), atol=0.75)
            np.testing.assert_allclose(homography.to_table((u.mean(), v.mean())), xy, atol=0.005)
    finally:
        pybullet.disconnect(client)


def make_commander(timeout: float = 1.0) -> tuple[TeleopCommander, SafetyEnvelope]:
    config = load_controller_config()
    envelope = SafetyEnvelope(config)
    return TeleopCommander(envelope, config.start_xy, timeout), envelope


def test_commander_steps_towards_the_pointer_clamped_like_the_policy():
    commander, envelope = make_commander()
    start = commander.commanded.copy()
    assert commander.tick(0.0) is None, "no pointer: no setpoints"
    target = start + [0.25, 0.13]
    assert envelope.contains(target)
    commander.point(target, now_s=0.0)
    steps = [commander.tick(0.2 * i) for i in range(1, 5)]
    limit = envelope.max_setpoint_step
    np.testing.assert_allclose(steps[0], [limit, limit])
    np.testing.assert_allclose(steps[1], [limit, 0.03], atol=1e-12)
    np.testing.assert_allclose(steps[2], [0.05, 0.0], atol=1e-12)
    np.testing.assert_allclose(steps[3], [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(commander.commanded, target)


def test_commander_keeps_targets_in_the_workspace_and_releases():
    commander, envelope = make_commander(timeout=0.5)
    commander.point(np.array([5.0, -5.0]), now_s=0.0)  # far outside: clamped into the workspace
    np.testing.assert_allclose(commander.target, envelope.clamp_target(np.array([5.0, -5.0]))[:2])
    assert envelope.contains(commander.target)
    assert commander.tick(0.4) is not None
    assert commander.tick(1.0) is None and not commander.engaged  # pointer silent > timeout
    commander.follow(np.array([0.4, 0.1]))  # released: adopt the controller's setpoint
    np.testing.assert_allclose(commander.commanded, [0.4, 0.1])
    commander.point(np.array([0.4, 0.12]), now_s=2.0)
    commander.follow(np.array([0.0, 0.0]))  # engaged: own integration wins
    np.testing.assert_allclose(commander.tick(2.1), [0.0, 0.02], atol=1e-12)
    with pytest.raises(ValueError, match="finite"):
        commander.point(np.array([np.nan, 0.0]), now_s=3.0)


def test_key_bindings_and_overlay():
    keys = KeyBindings()
    assert [keys.action_for(k) for k in ("r", "s", "d", "g", "start", "success", "x")] == \
        ["start", "stop", "discard", "success", "start", "success", None]
    with pytest.raises(ValueError, match="distinct"):
        KeyBindings(stop="r").validate()
    homography = LookAtCamera((1.0, 0.0, 0.7), (0.4, 0.0, 0.0), (-1.0, 0.0, 0.0), 0.722 * 64, 64, 36)\
        .table_homography(0.0, workspace_corners((0.15, 0.7), (-0.5, 0.5)))
    frame = np.zeros((36, 64, 3), np.uint8)
    image = draw_overlay(frame, homography, workspace_corners((0.15, 0.7), (-0.5, 0.5)),
                         np.array([0.3, -0.4]), np.array([0.5, 0.0]), "REC")
    assert image.shape == frame.shape and image.any()
    u, v = np.round(homography.to_pixel((0.5, 0.0))).astype(int)
    assert image[v - 5:v + 6, u - 5:u + 6, 2].max() == 255  # the red target ring is drawn there
