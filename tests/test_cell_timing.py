"""One owner for each shared fact (issue 24): the cell's timing is declared in config/timing.yaml
only, every config that needs it takes it from there, and a loader given its own copy refuses one
that disagrees - naming the field, the value given, the owner file and its value. The first
evaluation seed is sim.tasks.EVAL_SEED_BASE only. (The nodes' refusals, as real processes:
tests/fault/test_fault_startup.py.)"""
from __future__ import annotations

import re

import pytest
import yaml

from cell.control.config import ControllerConfig, load_controller_config
from cell.paths import share_file
from cell.stack import load_stack, parse_arguments, resolve
from cell.teleop.commander import TeleopConfig
from cell.timing import CellTiming, load_timing
from ibc_core.config_io import ConfigError, load_config
from sim.config import PUSH_TASKS, load_task_config
from sim.tasks import EVAL_SEED_BASE

OWNER_VALUES = r"timing.yaml \(control_period_s 0.2 = 5 Hz, controller_rate_hz 100\)"


def test_the_timing_is_declared_once_and_every_config_takes_it_from_there():
    timing = load_timing()
    assert (timing.control_period_s, timing.controller_rate_hz, timing.ticks_per_period) == (0.2, 100.0, 20)
    controller = load_controller_config()
    assert (controller.rate_hz, controller.setpoint_period_s) == (100.0, 0.2)
    assert (ControllerConfig().rate_hz, TeleopConfig().rate_hz) == (100.0, 5.0)
    assert all(load_task_config(task).control_hz == 5.0 for task in PUSH_TASKS)
    assert load_task_config("particle_2d").control_hz == 20.0   # no cell: its own rate
    # No shipped file repeats it.
    read = lambda name: yaml.safe_load(share_file("config", name).read_text())  # noqa: E731
    assert not {"rate_hz", "setpoint_period_s"} & set(read("controller.yaml"))
    assert all("control_hz" not in read(f"sim_{task}.yaml") for task in PUSH_TASKS)
    for params in ("policy.yaml", "teleop.yaml"):
        assert "rate_hz" not in read(params)["/**"]["ros__parameters"], params


def test_a_controller_yaml_with_its_own_timing_is_refused_unless_it_agrees(tmp_path):
    base = yaml.safe_load(share_file("config", "controller.yaml").read_text())
    agreeing = tmp_path / "old_style.yaml"   # a controller YAML written before timing.yaml existed
    agreeing.write_text(yaml.safe_dump({**base, "rate_hz": 100.0, "setpoint_period_s": 0.2}))
    assert load_controller_config(agreeing).rate_hz == 100.0
    for field, value, owner in [("rate_hz", 50.0, "100"), ("setpoint_period_s", 0.1, "0.2")]:
        path = tmp_path / f"{field}.yaml"
        path.write_text(yaml.safe_dump({**base, field: value}))
        with pytest.raises(ConfigError) as caught:
            load_controller_config(path)
        message = str(caught.value)
        assert "\n" not in message
        assert re.search(rf"{path.name}: ControllerConfig: {field} {value:g} disagrees with the cell's timing in "
                         rf"\S*{OWNER_VALUES}: leave {field} out or make it {owner}$", message), message
    with pytest.raises(ConfigError, match=rf"rate_hz 200 disagrees .*{OWNER_VALUES}"):
        load_controller_config(None, ["rate_hz=200"])


def test_a_push_task_config_with_another_rate_is_refused_the_particle_task_is_not():
    for task in PUSH_TASKS:
        assert load_task_config(task, ["control_hz=5.0"]).control_hz == 5.0
        with pytest.raises(ConfigError, match=rf"TaskConfig: control_hz 10 disagrees .*{OWNER_VALUES}: "
                                              r"leave control_hz out or make it 5$"):
            load_task_config(task, ["control_hz=10"])
    assert load_task_config("particle_3d", ["control_hz=10"]).control_hz == 10.0


def test_teleop_rate_parameter_must_agree():
    assert load_config(TeleopConfig, {"rate_hz": 5}).rate_hz == 5.0
    with pytest.raises(ConfigError, match=rf"TeleopConfig: rate_hz 10 disagrees .*{OWNER_VALUES}"):
        load_config(TeleopConfig, {"rate_hz": 10.0})


def test_the_timing_file_itself_is_validated_and_is_the_only_source_of_the_values():
    with pytest.raises(ConfigError, match="missing required field controller_rate_hz"):
        load_config(CellTiming, {"control_period_s": 0.2})
    with pytest.raises(ConfigError, match="not a whole number of controller cycles"):
        load_config(CellTiming, {"control_period_s": 0.205, "controller_rate_hz": 100.0})
    with pytest.raises(ConfigError, match="must be positive"):
        load_config(CellTiming, {"control_period_s": 0.0, "controller_rate_hz": 100.0})


def test_the_first_evaluation_seed_has_one_owner():
    from ibc_ros.nodes.sim_node import SimNodeConfig
    assert SimNodeConfig().first_seed == EVAL_SEED_BASE
    params = yaml.safe_load(share_file("config", "sim.yaml").read_text())["/**"]["ros__parameters"]
    assert "first_seed" not in params
    stack = load_stack("real_push")
    sim = resolve(stack, parse_arguments(stack, ["sim:=true"]))[0]
    assert sim.name == "sim" and "first_seed" not in sim.parameters   # seed:= unset: the node's default
    sim = resolve(stack, parse_arguments(stack, ["sim:=true", "seed:=7"]))[0]
    assert sim.parameters["first_seed"] == "7"
