"""The one safety envelope (cell/control/envelope.py, applied by CartesianController), property-
tested with hypothesis on the real controller: real PyBullet IK/FK of the xArm6 + pusher URDF.

For ANY sequence of setpoint deltas (huge, tiny, early, late, with e-stops and NaN/inf mixed in),
every 100 Hz cycle's
  * commanded Cartesian target lies in the workspace box, the reachable ring, at the fixed height;
  * commanded joints, through forward kinematics, put the pusher tip there too (within the IK
    tolerance plus what the joint step limit lets the joints lag the target);
  * joint command moves no joint by more than max_joint_step from the previous cycle;
and a non-finite setpoint is refused with ValueError without changing the setpoint.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cell.control import CartesianController, XArmIK, load_controller_config

CONFIG = load_controller_config()
# FK of the commanded joints may differ from the interpolated target by the IK tolerance (1 mm)
# and by the lag of a step-limited joint move; the plane is where a pushing arm could hit the
# table, so its bound is the tightest we claim.
TIP_TOLERANCE = 2e-3   # m


@pytest.fixture(scope="module")
def ik():
    solver = XArmIK(CONFIG.ik)
    yield solver
    solver.close()


# Full-speed steps (+-max_setpoint_step per axis) are where joint speed limits bite.
full_speed = st.sampled_from([-CONFIG.max_setpoint_step, 0.0, CONFIG.max_setpoint_step])
finite_delta = st.one_of(full_speed, st.floats(-1.0, 1.0, allow_nan=False))
huge_delta = st.sampled_from([-1e6, -5.0, 5.0, 1e6])
bad_delta = st.sampled_from([math.nan, math.inf, -math.inf])
event = st.one_of(
    st.tuples(st.just("setpoint"), st.one_of(finite_delta, huge_delta), st.one_of(finite_delta, huge_delta),
              st.integers(0, 30)),
    st.tuples(st.just("bad"), st.one_of(finite_delta, bad_delta), bad_delta, st.integers(0, 3)),
    st.tuples(st.just("estop"), st.just(0.0), st.just(0.0), st.integers(0, 10)),
)


def assert_inside(xyz: np.ndarray, tolerance: float, what: str) -> None:
    ws = CONFIG.workspace
    x, y, z = xyz
    radius = math.hypot(x, y)
    assert ws.x[0] - tolerance <= x <= ws.x[1] + tolerance, (what, xyz)
    assert ws.y[0] - tolerance <= y <= ws.y[1] + tolerance, (what, xyz)
    assert ws.radius[0] - tolerance <= radius <= ws.radius[1] + tolerance, (what, xyz)
    assert abs(z - ws.height) <= tolerance, (what, xyz)


start = st.tuples(st.floats(*CONFIG.workspace.x), st.floats(*CONFIG.workspace.y))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start, st.lists(event, min_size=1, max_size=25))
def test_any_setpoint_sequence_keeps_the_tip_in_the_workspace_and_joint_steps_limited(ik, start_xy, events):
    controller = CartesianController(CONFIG, ik=ik)
    controller.reset(np.array(start_xy))  # clamped into the envelope, like any target
    period = CONFIG.period_s
    t = 0.0
    previous = controller.joint_command
    for kind, dx, dy, cycles in events:
        if kind == "estop":
            controller.estop(t)
        elif kind == "bad":
            before = controller.setpoint
            with pytest.raises(ValueError, match="finite"):
                controller.on_setpoint_delta(np.array([dx, dy]), t)
            assert np.array_equal(controller.setpoint, before)
        else:
            controller.on_setpoint_delta(np.array([dx, dy]), t)
        for _ in range(cycles + 1):
            t += period
            joints, target = controller.step(t)
            assert_inside(target, 1e-9, "interpolated target")
            assert_inside(ik.forward(joints), TIP_TOLERANCE, "tip of the commanded joints")
            assert np.max(np.abs(joints - previous)) <= CONFIG.max_joint_step + 1e-12
            previous = joints
    assert controller.ik_failures == 0


@settings(max_examples=300, deadline=None)
@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6))
def test_clamped_targets_are_inside_the_box_and_the_ring(x, y):
    """The envelope alone, over the whole plane (its box clip after the ring projection must not
    leave the ring)."""
    from cell.control.envelope import SafetyEnvelope
    target = SafetyEnvelope(CONFIG).clamp_target(np.array([x, y]))
    assert_inside(target, 1e-9, "clamped target")
