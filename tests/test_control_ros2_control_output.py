"""cell.hardware.ros2_control_output without ROS: the rules of the stream to a ros2_control
controller (start from the measured pose, stop without fresh joint_states, on the e-stop and when
the arm does not follow, the arm's limits on every target) and its topic/joint-name conventions.
Over real DDS against a process playing the ros2_control side: tests/test_ros_ros2_control.py."""
from __future__ import annotations

import numpy as np
import pytest

from cell.control import ArmLimits, CartesianController, load_controller_config
from cell.hardware.joints import joint_names, positions_by_name
from cell.hardware.ros2_control_output import ArmOutputConfig, Ros2ControlStream, StreamState, duration_parts

CONFIG = load_controller_config()
PERIOD = CONFIG.period_s
NAMES = ["joint3", "drive_joint", "joint1", "joint6", "joint2", "joint5", "joint4"]   # as a broadcaster may list them


@pytest.fixture(scope="module")
def controller():
    controller = CartesianController(CONFIG)
    yield controller
    controller.ik.close()


def measure(stream: Ros2ControlStream, q: np.ndarray, t: float) -> None:
    by_name = dict(zip(joint_names(), q), drive_joint=0.5)
    stream.on_joint_state(NAMES, [by_name[name] for name in NAMES], t)


def test_names_topics_and_parameters_follow_xarm_ros2():
    assert joint_names("L_") == tuple(f"L_joint{i}" for i in range(1, 7))
    trajectory = ArmOutputConfig(output="joint_trajectory")
    assert trajectory.command_topic == "xarm6_traj_controller/joint_trajectory"
    assert ArmOutputConfig(output="joint_trajectory", joint_prefix="L_").command_topic == \
        "L_xarm6_traj_controller/joint_trajectory"
    assert ArmOutputConfig(output="forward_position", controller="arm").command_topic == "arm/commands"
    assert duration_parts(PERIOD) == (0, 10_000_000) and duration_parts(1.5) == (1, 500_000_000)
    q = np.arange(6) * 0.1
    assert np.array_equal(positions_by_name(NAMES, [dict(zip(joint_names(), q), drive_joint=9)[n] for n in NAMES]), q)
    with pytest.raises(ValueError, match=r"joint\(s\) \['L_joint1'"):
        positions_by_name(NAMES, [0.0] * 7, joint_names("L_"))
    for fields, message in [({"output": "joint_states"}, "output must be one of"),
                            ({"controller": "x"}, "but output is joint_command"),
                            ({"output": "forward_position", "joint_states_timeout": 0}, "joint_states_timeout must be positive")]:
        with pytest.raises(ValueError, match=message):
            ArmOutputConfig(**fields).validate()


def test_stream_starts_stops_and_restarts_from_the_measured_pose(controller):
    stream = Ros2ControlStream(controller, ArmOutputConfig(output="joint_trajectory"))
    home = controller.reset()
    t = 1000.0
    assert stream.step(t) == (None, None) and stream.state == StreamState.NO_JOINT_STATES
    measure(stream, home, t)
    joints, _ = stream.step(t)
    assert np.array_equal(joints, home) and stream.streaming          # the first target: the measured pose itself

    # Setpoints far outside the workspace, the arm following: every target passes the arm's limits
    # (checked afresh) and the per-cycle step.
    check = ArmLimits(controller.limits.config, kinematics=controller.ik)
    check.reset(home, t)
    arm = home
    for i in range(150):
        t += PERIOD
        if i % 20 == 0:
            controller.on_setpoint_delta(np.array([0.1, -0.1]) * (1 if i < 80 else -1), t)
        measure(stream, arm, t)
        joints, _ = stream.step(t)
        assert np.max(np.abs(joints - arm)) <= CONFIG.max_joint_step + 1e-9
        assert check.submit(joints, t) is None
        arm = joints

    # joint_states stop: nothing is sent once they are older than joint_states_timeout.
    timeout = stream.config.joint_states_timeout
    assert stream.step(t + 0.5 * timeout)[0] is not None
    t += 1.01 * timeout
    assert stream.step(t) == (None, None) and "joint_states stale" in stream.reason
    # They return with the arm moved meanwhile (by another tool): the stream starts again exactly there.
    moved = arm + np.array([0.1, 0, 0, 0, 0, 0])
    measure(stream, moved, t)
    assert np.array_equal(stream.step(t)[0], moved)

    # E-stop: nothing is sent; released, it starts again from the measured pose.
    controller.estop(t)
    assert stream.step(t + PERIOD) == (None, None) and stream.state == StreamState.ESTOPPED
    controller.release_estop(t + 2 * PERIOD)
    measure(stream, moved, t + 3 * PERIOD)
    assert np.array_equal(stream.step(t + 3 * PERIOD)[0], moved)

    # The arm no longer follows: the targets run at most max_tracking_error ahead, then restart.
    t += 3 * PERIOD
    controller.on_setpoint_delta(np.array([0.1, 0.1]), t)
    lead = 0.0
    for _ in range(60):
        t += PERIOD
        measure(stream, moved, t)
        joints, _ = stream.step(t)
        if joints is not None:
            lead = max(lead, float(np.max(np.abs(joints - moved))))
    assert stream.resyncs >= 1 and 0 < lead <= stream.config.max_tracking_error + CONFIG.max_joint_step


def test_stream_refuses_to_start_off_the_working_plane(controller):
    stream = Ros2ControlStream(controller, ArmOutputConfig(output="forward_position"))
    raised = controller.ik.solve(np.array([0.4, 0.0, 0.12]), seed=np.array(CONFIG.ik.rest_joints))
    measure(stream, raised, 5.0)
    assert stream.step(5.0) == (None, None) and stream.state == StreamState.START_REFUSED
    assert "not starting from the measured pose" in stream.reason and "working height" in stream.reason
