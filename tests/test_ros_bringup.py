"""One stack description (config/stack.yaml) behind both the ROS launch files and `ibc-ros launch`:
the launch files and ibc_ros/ros2_launch.py are parsed (launch/launch_ros are not installable
here) and checked to build their nodes from that description; every params file matches its
node's config dataclass; the pip bringup starts real node processes and stops the whole stack
(with the failing node's message) when one dies. Ctrl-C of a running stack: tests/test_ros_sim_stack.py."""
from __future__ import annotations

import ast
import dataclasses
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cell.stack import StackError, load_stack, parse_arguments, resolve
from cell.paths import share_file

pytestmark = pytest.mark.ros
LAUNCH_FILES = {"real_push": share_file("launch", "real_push.launch.py"),
                "record_demos": share_file("launch", "record_demos.launch.py")}
ROS2_LAUNCH = Path(__file__).resolve().parents[1] / "ibc_ros" / "ros2_launch.py"


def node_config_classes() -> dict[str, type]:
    from ibc_ros.nodes.camera_node import CameraNodeConfig
    from ibc_ros.nodes.controller_node import ControllerNodeConfig
    from ibc_ros.nodes.policy_node import PolicyNodeConfig
    from ibc_ros.nodes.sim_node import SimNodeConfig
    from ibc_ros.nodes.xarm_driver_node import DriverNodeConfig
    from cell.console.config import ConsoleConfig
    return {"camera_node": CameraNodeConfig, "controller_node": ControllerNodeConfig,
            "policy_node": PolicyNodeConfig, "sim_node": SimNodeConfig, "xarm_driver_node": DriverNodeConfig,
            "console_node": ConsoleConfig}


def owned_fields(cls: type) -> set[str]:
    """Top-level fields of a node config whose default is declared elsewhere (config_io.owned_by)."""
    from ibc_core.config_io import OWNER
    return {f.name for f in dataclasses.fields(cls) if OWNER in f.metadata}


@pytest.mark.parametrize("stack_name", sorted(LAUNCH_FILES))
def test_launch_files_build_their_nodes_from_the_stack_description(stack_name):
    # Each launch file only names its stack; ros2_launch builds every launch description.
    tree = ast.parse(LAUNCH_FILES[stack_name].read_text())
    imported = {(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    assert imported == {("ibc_ros.ros2_launch", "stack_launch_description")}
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    returned = next(n.value for n in ast.walk(functions["generate_launch_description"]) if isinstance(n, ast.Return))
    assert ast.unparse(returned) == f"stack_launch_description({stack_name!r})"
    load_stack(stack_name)  # the stack it names exists

    tree = ast.parse(ROS2_LAUNCH.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == "cell.stack" for alias in node.names}
    assert {"load_stack", "resolve", "parse_arguments"} <= imported
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    called = {c.func.id for c in calls if isinstance(c.func, ast.Name)}
    assert {"DeclareLaunchArgument", "OpaqueFunction", "Node", "LaunchDescription", "Shutdown",
            "load_stack", "parse_arguments", "resolve"} <= called
    node_call = next(c for c in calls if isinstance(c.func, ast.Name) and c.func.id == "Node")
    keywords = {k.arg: k.value for k in node_call.keywords}
    assert ast.literal_eval(keywords["package"]) == "ibc_ros"
    assert {"executable", "name", "parameters", "on_exit"} <= set(keywords)
    # Node executables, names and parameters all come from the NodeSpec the stack resolves to.
    assert ast.unparse(keywords["executable"]) == "spec.executable"
    assert ast.unparse(keywords["name"]) == "spec.name"


def test_stack_selects_nodes_by_arguments_and_params_files_match_node_configs():
    stack = load_stack("real_push")
    assert {"sim", "policy", "robot_ip", "camera", "episodes"} <= {a.name for a in stack.arguments}
    sim = resolve(stack, parse_arguments(stack, ["sim:=true", "episodes:=3", "policy:=x.pt"]))
    assert [s.name for s in sim] == ["sim", "policy", "controller", "console"]
    assert sim[0].required and sim[0].parameters["episodes"] == "3"
    assert sim[1].parameters["checkpoint"] == "x.pt" and sim[1].parameters["use_sim_time"] == "true"
    real = resolve(stack, parse_arguments(stack, ["robot_ip:=10.1.2.3", "camera:=v4l2"]))
    assert [s.name for s in real] == ["camera", "xarm_driver", "policy", "controller", "console"]
    assert real[0].parameters["source"] == "v4l2" and real[1].parameters["robot_ip"] == "10.1.2.3"
    assert real[2].parameters["use_sim_time"] == "false"
    with pytest.raises(StackError, match="camera:=usb is not one of"):
        parse_arguments(stack, ["camera:=usb"])
    with pytest.raises(StackError, match="unknown launch argument 'robotip'"):
        parse_arguments(stack, ["robotip:=1.2.3.4"])
    # A value of the wrong type stops the launch, named (nodes used to drop it without a word).
    for pair, message in [("episodes:=abc", "episodes:='abc' must be an integer"),
                          ("episodes:=two", "episodes:='two' must be an integer"),
                          ("seed:=1.5", "seed:='1.5' must be an integer"),
                          ("real_time_factor:=nan", "real_time_factor:='nan' must be a number")]:
        with pytest.raises(StackError, match=message):
            parse_arguments(stack, ["sim:=true", pair])

    # Every params file holds exactly its node's config fields - but for those whose value is
    # declared once elsewhere (owned_by: the cell timing, the first evaluation seed), which it
    # leaves out - and the stack's inline parameters are fields too (use_sim_time is rclpy's own).
    classes = node_config_classes()
    from ibc_ros.nodes.common import _flat_defaults
    for spec in sim + real:
        fields = set(_flat_defaults(classes[spec.executable]))
        owned = owned_fields(classes[spec.executable])
        content = yaml.safe_load(Path(spec.params_file).read_text())
        assert set(content) == {"/**"}, spec.params_file
        assert set(content["/**"]["ros__parameters"]) == fields - owned, spec.params_file
        assert set(spec.parameters) - {"use_sim_time"} <= fields, spec.name
    assert owned_fields(classes["policy_node"]) == {"rate_hz"}
    assert owned_fields(classes["sim_node"]) == {"first_seed"}
    # A typed argument feeds node parameters of that type.
    types = {a.name: a.type for a in stack.arguments}
    for node in stack.nodes:
        defaults = _flat_defaults(classes[node.executable])
        for key, value in node.parameters.items():
            argument = str(value)[2:-1] if str(value).startswith("$(") else None
            if argument and types[argument] != "str":
                assert type(defaults[key]).__name__ == types[argument], (node.name, key, argument)


def free_port() -> int:
    """A TCP port nothing listens on now (the console's; parallel runs must not share 8765)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bringup(args: list[str], log: Path, stack: str = "real_push") -> subprocess.Popen:
    port = [] if any(a.startswith("console_port:=") for a in args) else [f"console_port:={free_port()}"]
    return subprocess.Popen([sys.executable, "-m", "ibc_cli.ros", "launch", stack, *args, *port],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def child_pids(log: Path) -> list[int]:
    return [int(line.split("(pid ")[1].split(")")[0]) for line in log.read_text().splitlines()
            if line.startswith("[ibc-ros] started")]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone for our purposes
        return stat.read().split()[2] != "Z"


def test_bringup_stops_the_stack_with_a_clear_message_when_a_node_dies(tmp_path):
    # Hardware stack with no hardware: camera and driver keep retrying, the policy node fails at
    # once (missing checkpoint) -> the whole stack stops, with the policy's message and status 1.
    # (Ctrl-C of a running stack: tests/test_ros_sim_stack.py.)
    log = tmp_path / "missing.log"
    proc = bringup(["policy:=no/such/policy.pt", "robot_ip:=127.0.0.1"], log)
    assert proc.wait(timeout=90) == 1
    text = log.read_text()
    assert "policy checkpoint 'no/such/policy.pt' not found" in text
    assert "policy exited with status 1: stopping the stack" in text
    pids = child_pids(log)
    assert len(pids) == 5 and not any(alive(pid) for pid in pids)   # camera, driver, policy, controller, console


@pytest.mark.parametrize("stack_name", ["real_push", "record_demos"])
def test_the_task_argument_offers_exactly_the_cell_tasks_sim_knows(stack_name):
    """stack.yaml's `task` choices and sim/config.py's task lists name the same tasks: a task added
    to one and not the other would be refused at launch, or offered and then unknown to the sim."""
    from sim.config import FIXTURE_TASKS, PUSH_TASKS
    task = next(a for a in load_stack(stack_name).arguments if a.name == "task")
    assert set(task.choices) == set(PUSH_TASKS + FIXTURE_TASKS)
