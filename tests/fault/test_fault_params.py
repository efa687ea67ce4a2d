"""Runtime parameter changes (`ros2 param set`): every node reads its parameters once, at start-up,
so a change is refused - the SetParameters result says why (and whether the value would even
pass the start-up validation), the node logs it, and the parameter reads back unchanged. Real
rcl_interfaces SetParameters / GetParameters service calls over DDS to real node processes
(common.config_from_parameters, shared by every node)."""
from __future__ import annotations

import math

import pytest
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter

from tests.fault.conftest import node_argv
from tests.ros_client import RosClient, wait_for
from tests.ros_processes import running

pytestmark = pytest.mark.ros

# node: [(parameter, new value, True if the start-up validation refuses it too)]
CHANGES = {
    # rate_hz 10 now disagrees with config/timing.yaml (invalid too); max_frame_age 2.0 is valid.
    "policy": [("rate_hz", 0.0, True), ("max_frame_age", -1.0, True), ("rate_hz", 10.0, True),
               ("max_frame_age", 2.0, False)],
    "controller": [("max_setpoint_age", math.nan, True), ("reset_jumps", "banana", True)],
    "sim": [("real_time_factor", 0.0, True), ("step_timeout", -1.0, True), ("episodes", -5, True)],
    "recorder": [("flush_interval_s", 0.0, True)],
}


def test_parameter_changes_at_runtime_are_refused_with_the_reason(tiny_rgb_checkpoint, tmp_path):
    nodes = {
        "policy": node_argv("policy_node", "policy.yaml", f"checkpoint:={tiny_rgb_checkpoint}", "device:=cpu",
                            "torch_threads:=1"),
        "controller": node_argv("controller_node", "controller_node.yaml"),
        "sim": node_argv("sim_node", "sim.yaml", "supervise:=false"),
        "recorder": node_argv("recorder_node", "recorder.yaml", f"output_dir:={tmp_path / 'bags'}"),
    }
    logs = {name: tmp_path / f"{name}.log" for name in nodes}
    with RosClient("param_fault") as client, running(nodes["policy"], logs["policy"]), \
            running(nodes["controller"], logs["controller"]), running(nodes["sim"], logs["sim"]), \
            running(nodes["recorder"], logs["recorder"]):
        for node, changes in CHANGES.items():
            names = [name for name, _, _ in changes]
            before = client.call(GetParameters, f"/{node}/get_parameters", GetParameters.Request(names=names),
                                 timeout=180).values
            for (name, value, invalid), old in zip(changes, before):
                request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
                (result,) = client.call(SetParameters, f"/{node}/set_parameters", request).results
                assert not result.successful, (node, name, value)
                assert f"{name} read only at start-up: not applied" in result.reason, result.reason
                assert ("the value is invalid too" in result.reason) == invalid, result.reason
                (now,) = client.call(GetParameters, f"/{node}/get_parameters",
                                     GetParameters.Request(names=[name])).values
                assert now == old, (node, name, now, old)
            wait_for(lambda: f"parameter change refused: {names[-1]}" in logs[node].read_text(), 20,
                     f"{node}'s log line")
        # The nodes are still running.
        assert "Traceback" not in "".join(log.read_text() for log in logs.values())


def test_refusal_names_only_the_node_parameters():
    from ibc_ros.nodes.common import startup_parameter_refusal
    from ibc_ros.nodes.policy_node import PolicyNodeConfig
    assert startup_parameter_refusal(PolicyNodeConfig, {}, {"use_sim_time": True}) is None  # rclpy's own
    reason = startup_parameter_refusal(PolicyNodeConfig, {}, {"use_sim_time": True, "image_width": 1})
    assert reason == "image_width read only at start-up: not applied (restart the node with -p image_width:=1)"
