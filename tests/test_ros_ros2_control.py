"""The controller node's ros2_control outputs over real DDS, against tests/ros2_control_side.py in
its own process playing xarm_ros2's side of the topic contract: joint_states as the
joint_state_broadcaster publishes them (names shuffled in every message, a gripper joint too),
and a JointTrajectoryController (<controller>/joint_trajectory) or a forward position controller
(<controller>/commands) taking the targets. The side checks rate, joint names and order, the arm's
limits and the per-cycle step of every command; here the stack description starts no driver of
ours for them, and refuses them with the sim and with our driver's dry run."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Vector3Stamped
from std_srvs.srv import Trigger

from cell.control import load_controller_config
from cell.paths import share_file
from cell.stack import StackError, load_stack, parse_arguments, resolve
from ibc_ros.nodes.common import setpoint_delta_msg
from tests.ros_client import RosClient, wait_for
from tests.ros_processes import running

pytestmark = pytest.mark.ros
NODE = yaml.safe_load(share_file("config", "controller_node.yaml").read_text())["/**"]["ros__parameters"]
TIMEOUT, MAX_TRACKING_ERROR = NODE["joint_states_timeout"], NODE["max_tracking_error"]   # as the node runs
CONFIG = load_controller_config()


def set_mode(control: Path, mode: str) -> None:
    partial = control.with_suffix(".partial")
    partial.write_text(mode)
    os.replace(partial, control)


def read(report: Path) -> dict:
    return json.loads(report.read_text()) if report.exists() else {"commands": 0, "phases": []}


def quiet(report: Path, seconds: float, timeout: float, what: str) -> None:
    """Wait until no command has reached the side for ``seconds`` (a loaded machine may still be
    delivering); TimeoutError naming what was awaited if the commands never stop."""
    deadline = time.monotonic() + timeout
    count, since = read(report)["commands"], time.monotonic()
    while time.monotonic() - since < seconds:
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
        if read(report)["commands"] != count:
            count, since = read(report)["commands"], time.monotonic()


def controller_status(diagnostics: list):
    """The controller's newest /diagnostics status (name = its fully qualified node name)."""
    statuses = [s for array in diagnostics for s in array.status if s.name == "/controller"]
    return statuses[-1] if statuses else None


def diagnosed(diagnostics: list, state: str) -> bool:
    status = controller_status(diagnostics)
    return status is not None and {v.key: v.value for v in status.values}.get("state") == state


def push(client: RosClient, pub, deltas: list[tuple[float, float]]) -> None:
    """Setpoints at the policy's rate."""
    for dx, dy in deltas:
        pub.publish(setpoint_delta_msg((dx, dy), client.now().to_msg()))
        time.sleep(CONFIG.setpoint_period_s)


@pytest.mark.parametrize("output", ["joint_trajectory", "forward_position"])
def test_ros2_control_output_streams_within_limits_and_stops_without_joint_states(tmp_path, output):
    control, report = tmp_path / "mode", tmp_path / "report.json"
    set_mode(control, "run")
    side = [sys.executable, "-m", "tests.ros2_control_side", "--output", output,
            "--control", str(control), "--report", str(report)]
    controller = [sys.executable, "-m", "ibc_ros.nodes.controller_node", "--ros-args",
                  "--params-file", str(share_file("config", "controller_node.yaml")), "-p", f"output:={output}"]
    log = tmp_path / "controller.log"
    with RosClient("ros2_control_test") as client, running(side, tmp_path / "side.log"), running(controller, log):
        diagnostics = client.collect(DiagnosticArray, "/diagnostics")
        pub = client.publisher(Vector3Stamped, "setpoint_delta")
        # Streaming starts from the arm's measured pose (the side's first command check: no jump).
        wait_for(lambda: read(report)["commands"] >= 20 and pub.get_subscription_count() > 0, 60, "commands")
        wait_for(lambda: diagnosed(diagnostics, "streaming"), 10, "diagnostics: streaming")

        # Setpoints far outside the workspace, every way: no command leaves the arm's limits or steps
        # further than max_joint_step in a cycle (checked by the side on every command).
        push(client, pub, [(-0.1, -0.1)] * 6 + [(0.1, 0.1)] * 8 + [(0.1, -0.1)] * 6 + [(-0.1, 0.1)] * 4)
        seen = read(report)
        assert seen["violations"] == [] and seen["commands"] > 200
        streaming = seen["phases"][0]
        rate = (streaming["commands"] - 1) / (streaming["last"] - streaming["first"])
        # 100 Hz, one command per control cycle: a loaded 2-core machine loses some cycles but never
        # half of them, and no cycle sends two (the benchmark of the rate: bench/controller_node.py)
        print(f"{output}: {rate:.1f} commands/s over {streaming['last'] - streaming['first']:.1f} s")
        assert 50.0 < rate < 110.0, rate

        # joint_states stop: streaming stops within joint_states_timeout (plus delivery), and the
        # controller says why, in its log and on /diagnostics.
        set_mode(control, "stop")
        wait_for(lambda: diagnosed(diagnostics, "no_joint_states"), 20, "diagnostics: joint_states stale")
        assert "joint_states stale" in controller_status(diagnostics).message
        quiet(report, 1.0, 20, "the commands to stop")
        stopped = read(report)
        assert stopped["after_stop"] <= 2 * TIMEOUT / CONFIG.period_s + 10, stopped["after_stop"]
        push(client, pub, [(0.05, 0.0)])   # not streaming: refused, nothing sent
        wait_for(lambda: "setpoint ignored: not streaming" in log.read_text(), 20, "setpoint refused while stale")
        assert "joint_states stale: none for" in log.read_text()
        assert read(report)["commands"] == stopped["commands"]

        # joint_states return with the arm moved meanwhile (NUDGE rad, several cycles' step): streaming
        # resumes from the measured pose - the side counts that restart - never from where it stopped.
        set_mode(control, "nudge")
        wait_for(lambda: read(report)["phases"][-1]["commands"] >= 20, 30, "streaming again")
        assert read(report)["phases"][-1]["restarts"] >= 1 and read(report)["violations"] == []

        # E-stop: nothing is sent (the arm's controller holds); released, streaming resumes.
        assert client.call(Trigger, "controller/estop", Trigger.Request()).success
        wait_for(lambda: diagnosed(diagnostics, "estopped"), 20, "diagnostics: e-stop")
        quiet(report, 1.0, 20, "the commands to stop on the e-stop")
        assert client.call(Trigger, "controller/release_estop", Trigger.Request()).success
        held = read(report)["commands"]
        wait_for(lambda: read(report)["commands"] >= held + 20, 30, "streaming after the release")

        # The arm stops following: the targets never run further ahead of it than
        # max_tracking_error (+ the cycle's step); the stream restarts from the measured pose.
        set_mode(control, "freeze")
        push(client, pub, [(0.1, 0.0)] * 6)
        frozen = read(report)
        assert 0 < frozen["max_lead"] <= MAX_TRACKING_ERROR + CONFIG.max_joint_step + 1e-9, frozen["max_lead"]
        assert frozen["phases"][-1]["restarts"] >= 1 and frozen["violations"] == []
        wait_for(lambda: int({v.key: v.value for v in controller_status(diagnostics).values}["resyncs"]) > 0,
                 10, "diagnostics counting the restarts")
        assert "the arm does not follow" in log.read_text()


def test_real_push_with_a_ros2_control_output_starts_no_driver_of_ours():
    stack = load_stack("real_push")
    for output in ("joint_trajectory", "forward_position"):
        nodes = resolve(stack, parse_arguments(stack, [f"arm_output:={output}", "arm_controller:=arm_ctrl"]))
        assert [n.name for n in nodes] == ["camera", "policy", "controller", "console"]
        controller = nodes[2].parameters
        assert controller["output"] == output and controller["controller"] == "arm_ctrl"
    ours = resolve(stack, parse_arguments(stack, []))
    assert "xarm_driver" in [n.name for n in ours] and ours[-2].parameters["output"] == "joint_command"
    # The sim takes joint_command only, and a dry run is our driver's: both refused before any node starts.
    with pytest.raises(StackError, match=r"arm_output:=joint_trajectory needs sim:=false \(got sim:=true\)"):
        parse_arguments(stack, ["sim:=true", "arm_output:=joint_trajectory"])
    with pytest.raises(StackError, match=r"dry_run:=true needs arm_output:=joint_command"):
        parse_arguments(stack, ["dry_run:=true", "arm_output:=forward_position"])



def test_a_stack_argument_cannot_require_an_undeclared_one(tmp_path):
    description = tmp_path / "stack.yaml"
    description.write_text("stacks:\n  s:\n    arguments:\n      a: {default: x, requires: {nosuch: y}}\n"
                           "    nodes: []\n")
    with pytest.raises(StackError, match="argument a of stack s requires undeclared argument.* nosuch"):
        load_stack("s", description)


def test_controller_node_parameters_refuse_a_ros2_control_output_the_sim_would_not_take():
    from ibc_core.config_io import ConfigError, load_config
    from ibc_ros.nodes.controller_node import ControllerNodeConfig
    assert load_config(ControllerNodeConfig, {"output": "forward_position"}).command_topic == \
        "forward_position_controller/commands"
    for fields, message in [({"output": "joint_trajectory", "reset_jumps": True}, "the sim .* takes joint_command only"),
                            ({"output": "trajectory"}, "output must be one of"),
                            ({"controller": "xarm6_traj_controller"}, "but output is joint_command")]:
        with pytest.raises(ConfigError, match=message):
            load_config(ControllerNodeConfig, fields)
