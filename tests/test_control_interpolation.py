"""SetpointInterpolator and SafetyEnvelope (cell/control): pure logic, no ROS."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibc_core.config_io import ConfigError
from cell.control import SafetyEnvelope, SetpointInterpolator, load_controller_config

coordinate = st.floats(-1.0, 1.0, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(start=st.tuples(coordinate, coordinate), goal=st.tuples(coordinate, coordinate),
       fraction=st.floats(0.0, 1.0))
def test_interpolation_is_linear_between_setpoints(start, goal, fraction):
    interpolator = SetpointInterpolator(0.2, np.array(start))
    interpolator.set_goal(np.array(goal), t=3.0)
    expected = np.array(start) + fraction * (np.array(goal) - np.array(start))
    np.testing.assert_allclose(interpolator.position(3.0 + 0.2 * fraction), expected, atol=1e-12)


def test_interpolation_holds_after_the_period_and_chains_from_the_last_setpoint():
    interpolator = SetpointInterpolator(0.2, np.zeros(2))
    interpolator.set_goal(np.array([0.1, 0.0]), t=0.0)
    np.testing.assert_allclose(interpolator.position(0.5), [0.1, 0.0])      # holds
    np.testing.assert_allclose(interpolator.position(10.0), [0.1, 0.0])
    interpolator.set_goal(np.array([0.1, 0.2]), t=10.0)                     # next segment
    np.testing.assert_allclose(interpolator.position(10.1), [0.1, 0.1])


def test_early_setpoint_starts_from_the_commanded_point_without_a_jump():
    interpolator = SetpointInterpolator(0.2, np.zeros(2))
    interpolator.set_goal(np.array([0.2, 0.0]), t=0.0)
    before = interpolator.position(0.1)
    interpolator.set_goal(np.array([0.2, 0.2]), t=0.1)
    np.testing.assert_allclose(interpolator.position(0.1), before)
    np.testing.assert_allclose(interpolator.position(0.3), [0.2, 0.2])


@pytest.fixture(scope="module")
def envelope() -> SafetyEnvelope:
    return SafetyEnvelope(load_controller_config())


@settings(max_examples=200, deadline=None)
@given(x=st.floats(-2, 2), y=st.floats(-2, 2))
def test_clamped_targets_lie_in_the_envelope_at_fixed_height(envelope, x, y):
    target = envelope.clamp_target(np.array([x, y]))
    assert target[2] == envelope.height
    assert np.all(target[:2] >= envelope.low - 1e-12) and np.all(target[:2] <= envelope.high + 1e-12)
    radius = np.hypot(*target[:2])
    assert envelope.min_radius - 1e-9 <= radius <= envelope.max_radius + 1e-9


def test_targets_inside_the_envelope_are_unchanged(envelope):
    np.testing.assert_allclose(envelope.clamp_target([0.4, -0.2]), [0.4, -0.2, envelope.height])
    clamped = envelope.clamp_target([0.7, 0.5])                   # box corner beyond reach
    assert np.hypot(*clamped[:2]) == pytest.approx(envelope.max_radius)


def test_joint_step_and_delta_limits(envelope):
    previous = np.zeros(6)
    target = np.array([1.0, -1.0, 0.01, 0, 0, -0.02])
    limited = envelope.limit_joint_step(previous, target)
    # One factor for all joints: the step keeps the direction of the full joint move (the tip
    # stays on the chord towards the target) and the largest joint moves exactly the limit.
    np.testing.assert_allclose(limited, target * envelope.max_joint_step)
    assert np.max(np.abs(limited)) == pytest.approx(envelope.max_joint_step)
    small = np.array([0.01, 0, 0, 0, 0, -0.02])
    np.testing.assert_allclose(envelope.limit_joint_step(previous, small), small)
    np.testing.assert_allclose(envelope.clamp_delta([0.5, -0.02]), [envelope.max_setpoint_step, -0.02])
    for bad in ([np.nan, 0.0], [0.1], [np.inf, 0.0]):
        with pytest.raises(ValueError, match="setpoint delta"):
            envelope.clamp_delta(bad)


def test_controller_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="workspace"):
        load_controller_config(overrides=["workspace.x=[0.7, 0.1]"])
    with pytest.raises(ConfigError, match="max_joint_stepp"):
        load_controller_config(overrides=["max_joint_stepp=0.1"])
    with pytest.raises(ConfigError, match="start_xy"):
        load_controller_config(overrides=["start_xy=[2.0, 0.0]"])
