"""Bad parameters, files and checkpoints at start-up: each node process exits with status 1 and a
`fatal: ...` line that names the bad field or file, before publishing anything (so nothing can
move the arm). Nodes start in waves of a few real processes; the parameter path is the real rclpy
one: params file + `-p`."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from cell.paths import share_file
from tests.fault.conftest import node_argv

pytestmark = pytest.mark.ros


def bad_checkpoints(good: Path, root: Path) -> dict[str, Path]:
    garbage, truncated, mismatched = root / "garbage.pt", root / "truncated.pt", root / "mismatched.pt"
    garbage.write_bytes(b"not a checkpoint\n" * 100)
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    payload = torch.load(good, map_location="cpu", weights_only=True)
    payload["config"]["model"]["mlp"]["width"] *= 2  # the stored weights no longer fit the model
    torch.save(payload, mismatched)
    return {"garbage": garbage, "truncated": truncated, "mismatched": mismatched}


# Nodes started together. Not all 15: in CI (2 cores) one of 15 simultaneous start-ups once hung
# for 300 s before its parameters were read, i.e. inside rclpy/Fast DDS set-up, which is not what
# this test is about. Likely eProsima/Fast-DDS#6117: under load, a participant gives up waiting
# 2 s for the shared-memory port lock and breaks it, racing the others.
STARTED_AT_ONCE = 5


def start_and_check(cases: dict[str, tuple[list[str], str]], envs: dict[str, dict[str, str]] | None = None
                    ) -> list[str]:
    """Start the node processes at once (``envs``: extra environment variables by case); the
    failures of those that did not exit with status 1 and a `fatal:` line naming the expected
    text. A process still running after 300 s is aborted with SIGABRT, so faulthandler prints
    where each of its threads was."""
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    procs = {name: subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    env={**env, **(envs or {}).get(name, {})})
             for name, (argv, _) in cases.items()}
    failures = []
    for name, proc in procs.items():
        try:
            output, _ = proc.communicate(timeout=300)  # a loaded 2-core machine imports torch slowly
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            output, _ = proc.communicate()
        fatal = [line for line in output.splitlines() if line.startswith("fatal:")]
        if proc.returncode != 1 or not fatal or cases[name][1] not in fatal[0]:
            failures.append(f"{name}: exit {proc.returncode}, output tail:\n{output[-3000:]}")
    return failures


def test_nodes_refuse_to_start_with_bad_parameters_and_name_them(tiny_rgb_checkpoint, tmp_path):
    controller_yaml = yaml.safe_load(share_file("config", "controller.yaml").read_text())
    controller_yaml["workspace"]["x"] = [0.7, 0.15]  # reversed box
    bad_controller = tmp_path / "controller_bad.yaml"
    bad_controller.write_text(yaml.safe_dump(controller_yaml))
    checkpoints = bad_checkpoints(tiny_rgb_checkpoint, tmp_path)
    cases = {  # name: (argv, text the fatal line must contain)
        "controller age": (node_argv("controller_node", "controller_node.yaml", "max_setpoint_age:=-1.0"),
                           "max_setpoint_age"),
        "controller age nan": (node_argv("controller_node", "controller_node.yaml", "max_setpoint_age:=.nan"),
                               "max_setpoint_age: NaN is not a value"),
        "controller box": (node_argv("controller_node", "controller_node.yaml", f"config_file:={bad_controller}"),
                           "workspace.x"),
        "controller file": (node_argv("controller_node", "controller_node.yaml",
                                      f"config_file:={tmp_path / 'missing.yaml'}"), "missing.yaml"),
        "policy rate": (node_argv("policy_node", "policy.yaml", f"checkpoint:={tiny_rgb_checkpoint}", "rate_hz:=0.0"),
                        "rate_hz"),
        "policy precision": (node_argv("policy_node", "policy.yaml", f"checkpoint:={tiny_rgb_checkpoint}",
                                       "precision:=fp16"), "precision"),
        "policy setting": (node_argv("policy_node", "policy.yaml", f"checkpoint:={tiny_rgb_checkpoint}",
                                     "policy_set:=ebm.dfo.sample=64"), "ebm.dfo.sample"),
        "policy missing": (node_argv("policy_node", "policy.yaml", f"checkpoint:={tmp_path / 'nope.pt'}"),
                           "not found"),
        "policy garbage": (node_argv("policy_node", "policy.yaml", f"checkpoint:={checkpoints['garbage']}"),
                           "corrupt or truncated"),
        "policy truncated": (node_argv("policy_node", "policy.yaml", f"checkpoint:={checkpoints['truncated']}"),
                             "corrupt or truncated"),
        "policy mismatched": (node_argv("policy_node", "policy.yaml", f"checkpoint:={checkpoints['mismatched']}"),
                              "weights do not match"),
        "driver": (node_argv("xarm_driver_node", "xarm_driver.yaml", "collision_sensitivity:=9"),
                   "collision_sensitivity"),
        "driver start": (node_argv("xarm_driver_node", "xarm_driver.yaml", "start_joints:=[0.1, 0.2]"),
                         "start_joints"),
        "sim": (node_argv("sim_node", "sim.yaml", "real_time_factor:=-1.0"), "real_time_factor"),
        "camera": (node_argv("camera_node", "camera.yaml", "fps:=0"), "fps"),
        "recorder": (node_argv("recorder_node", "recorder.yaml", "flush_interval_s:=0.0"), "flush_interval_s"),
    }
    failures = []
    names = list(cases)
    for first in range(0, len(names), STARTED_AT_ONCE):
        failures += start_and_check({name: cases[name] for name in names[first:first + STARTED_AT_ONCE]})
    assert not failures, "\n\n".join(failures)


def share_with(root: Path, edits: dict[str, dict]) -> Path:
    """A share directory (IBC_ROS_SHARE) like the installed one but for ``edits`` (config file
    name -> keys to set): how an operator's edited config reaches a node that takes no path."""
    (root / "config").mkdir(parents=True)
    (root / "package.xml").write_bytes(share_file("package.xml").read_bytes())
    (root / "urdf").symlink_to(share_file("urdf"))
    for source in share_file("config").glob("*.yaml"):
        text = source.read_text()
        if source.name in edits:
            text = yaml.safe_dump({**yaml.safe_load(text), **edits[source.name]})
        (root / "config" / source.name).write_text(text)
    return root


def test_nodes_refuse_a_timing_that_disagrees_with_config_timing(tmp_path):
    """The control period and the controller rate are declared once (config/timing.yaml): a node
    given its own copy that disagrees - a parameter, a controller YAML, a push task config - exits
    at start-up with one fatal line naming the field, the value given and the owner file's value."""
    controller_yaml = yaml.safe_load(share_file("config", "controller.yaml").read_text())
    fast, short = tmp_path / "controller_200hz.yaml", tmp_path / "controller_short_period.yaml"
    fast.write_text(yaml.safe_dump({**controller_yaml, "rate_hz": 200.0}))
    short.write_text(yaml.safe_dump({**controller_yaml, "setpoint_period_s": 0.1}))
    share = share_with(tmp_path / "share", {"sim_push_pixels.yaml": {"control_hz": 10.0}})
    owner = "disagrees with the cell's timing in {}timing.yaml (control_period_s 0.2 = 5 Hz, controller_rate_hz 100)"
    installed, edited = owner.format(f"{share_file('config')}/"), owner.format(f"{share / 'config'}/")
    cases = {
        "policy rate": (node_argv("policy_node", "policy.yaml", "rate_hz:=10.0"), f"rate_hz 10 {installed}"),
        "teleop rate": (node_argv("teleop_node", "teleop.yaml", "display:=none", "rate_hz:=2.5"),
                        f"rate_hz 2.5 {installed}"),
        "controller rate": (node_argv("controller_node", "controller_node.yaml", f"config_file:={fast}"),
                            f"{fast}: ControllerConfig: rate_hz 200 {installed}"),
        "controller period": (node_argv("controller_node", "controller_node.yaml", f"config_file:={short}"),
                              f"setpoint_period_s 0.1 {installed}"),
        "sim task rate": (node_argv("sim_node", "sim.yaml", "task:=push_pixels"), f"control_hz 10 {edited}"),
    }
    failures = start_and_check(cases, {"sim task rate": {"IBC_ROS_SHARE": str(share)}})
    assert not failures, "\n\n".join(failures)
