"""cell/control/arm_limits.py: the one check of the arm's hard limits (driver, sim arm and
controller), on the real URDF's forward kinematics. ROS-free."""
from __future__ import annotations

import numpy as np
import pytest

from ibc_core.config_io import ConfigError
from cell.control import (ArmLimits, CartesianController, SafetyEnvelope, XArmIK, load_arm_limits,
                             load_controller_config)


@pytest.fixture(scope="module")
def limits():
    checker = ArmLimits(load_arm_limits())
    yield checker
    checker.close()


@pytest.fixture(scope="module")
def start():
    config = load_controller_config()
    ik = XArmIK(config.ik)
    q = ik.solve(SafetyEnvelope(config).clamp_target(config.start_xy), seed=np.array(config.ik.rest_joints))
    ik.close()
    return q


def test_config_errors_name_the_field():
    for override, field in (("tip_box.z=[0.3,0.1]", "tip_box.z"), ("max_joint_velocity=0", "max_joint_velocity"),
                            ("tip_box.z=[-0.1,0.1]", "tip_box.z"), ("max_tip_speedd=1", "max_tip_speedd")):
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            load_arm_limits(overrides=[override])


def test_a_controller_workspace_outside_the_tip_box_is_refused_at_start():
    config = load_controller_config(overrides=["workspace.x=[0.1,0.7]"])
    with pytest.raises(ValueError, match=r"workspace\.x .* tip_box"):
        CartesianController(config)


def test_each_limit_refuses_by_name_and_holds_the_reference(limits, start):
    c = limits.config
    limits.reset(start, 0.0)
    assert limits.submit(start, 0.01) is None
    cases = {
        "below the table plane": (start + [0, 0.35, 0, 0, 0, 0], 0.5),          # pose: tip into the table
        "outside its limits": (start + [0, 0, 1.5, 0, 0, 0], 0.5),              # joint3 past its URDF limit
        "rad/s": (start + [0.05, 0, 0, 0, 0, 0], 0.02),                         # 5 rad/s
        "not newer": (start, 0.01),
    }
    for reason, (q, t) in cases.items():
        assert reason in limits.submit(q, t), reason
        np.testing.assert_array_equal(limits.last, start)                     # held
    # a long gap does not license a jump: 0.2 rad after 1 s is still timed over max_step_interval
    assert "rad/s" in limits.submit(start + [0.2, 0, 0, 0, 0, 0], 1.0)
    assert limits.submit(start, 1.0) is None and limits.submit(start, 1.01) is None   # at rest
    # tip speed: joint1 at 2.5 rad/s is within the joint limit but moves the tip at ~1.2 m/s
    assert "m/s" in limits.submit(start + [2.5 * 0.01, 0, 0, 0, 0, 0], 1.02)
    # acceleration: from rest to 3.1 rad/s in one 5 ms step (after a 10 ms one) is 413 rad/s^2
    assert c.max_joint_acceleration < 413
    assert "rad/s^2" in limits.submit(start + [0, 0, 0, 0, 3.1 * 0.005, 0], 1.015)


def test_limit_output_always_passes_the_check(limits, start):
    """What the controller emits (limit) is what a driver accepts (submit), whatever it asks for."""
    rng = np.random.default_rng(0)
    limits.reset(start, 0.0)
    check = ArmLimits(limits.config, kinematics=limits.kinematics)
    check.reset(start, 0.0)
    t, wanted = 0.0, start.copy()
    for _ in range(400):
        t += rng.choice([0.002, 0.01, 0.01, 0.018, 0.05])
        wanted = start + rng.uniform(-0.15, 0.15, 6) * [1, 1, 1, 0, 1, 1]
        q = limits.limit(wanted, t)
        assert check.submit(q, t) is None
