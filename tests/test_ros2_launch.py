"""The package as a ROS 2 user builds and launches it: colcon build, then the real `ros2 launch`
(shared/ros2-tools: ros2launch, launch_ros and ros2cli, installed into .venv by set-up where
this workplace carries them). Skipped, with the reason, in clones without ../shared/ros2-tools.

Each launch is a real process tree over real DDS: `ros2 launch` starts the nodes of
config/stack.yaml, the sim node runs the episodes with the shipped pixel policy."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_ros_bringup import free_port

REPO = Path(__file__).resolve().parents[1]
ROS2_TOOLS = REPO.parent / "shared" / "ros2-tools"
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.ros, pytest.mark.skipif(
    not ROS2_TOOLS.is_dir() and not os.environ.get("ROS_DISTRO"),
    reason=f"{ROS2_TOOLS} is absent (users' clones) and no ROS 2 is sourced: no `ros2 launch` to test with")]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A colcon workspace holding this checkout's files (tracked and new, as git lists them)."""
    assert (BIN / "ros2").exists() and (BIN / "colcon").exists(), \
        f"ros2 / colcon missing in {BIN}: ./run.sh set-up installs them from {ROS2_TOOLS}"
    root = tmp_path_factory.mktemp("ws")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.split()
    for name in listed:
        if (REPO / name).is_file():
            (root / "src" / "ibc_ros" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / "src" / "ibc_ros" / name)
    built = subprocess.run(["colcon", "build", "--packages-select", "ibc_ros"], cwd=root, env=environment(),
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return root


def environment() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def ros2_launch(workspace: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`source install/setup.bash && ros2 launch ibc_ros ARGS...` in the workspace."""
    command = "source install/setup.bash && exec ros2 launch ibc_ros " + " ".join(args)
    return subprocess.run(["bash", "-c", command], cwd=workspace, env=environment(), capture_output=True, text=True,
                          timeout=timeout, start_new_session=True)


def test_colcon_installs_the_launch_files_and_shares(workspace: Path) -> None:
    share = workspace / "install" / "ibc_ros" / "share" / "ibc_ros"
    for name in ("launch/real_push.launch.py", "launch/record_demos.launch.py", "config/stack.yaml",
                 "policies/push_pixels.pt", "package.xml"):
        assert (share / name).is_file(), name
    assert (workspace / "install" / "ibc_ros" / "lib" / "ibc_ros" / "policy_node").is_file()


@pytest.mark.parametrize("launch_file, arguments", [
    ("real_push.launch.py", ["'sim'", "'policy'", "'episodes'", "'any_task'", "'arm_output'", "'arm_controller'"]),
    ("record_demos.launch.py", ["'sim'", "'output_dir'"]),
])
def test_show_args_lists_the_stack_arguments(workspace: Path, launch_file: str, arguments: list[str]) -> None:
    shown = ros2_launch(workspace, launch_file, "--show-args")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert all(argument in shown.stdout for argument in arguments), shown.stdout


@pytest.mark.parametrize("argument, message", [
    ("sim:=maybe", "Argument \"sim\" provided value \"maybe\" is not valid"),
    ("episodes:=two", "launch argument episodes:='two' must be an integer"),
    ("arm_output:=joint_trajectory", "arm_output:=joint_trajectory needs sim:=false (got sim:=true)"),
])
def test_bad_arguments_stop_the_launch_with_a_clear_error(workspace: Path, argument: str, message: str) -> None:
    launched = ros2_launch(workspace, "real_push.launch.py", "sim:=true" if "sim:" not in argument else "", argument)
    assert launched.returncode != 0
    assert message in launched.stdout + launched.stderr, (launched.stdout + launched.stderr)[-2000:]


def test_the_simulated_stack_runs_its_episodes_and_exits(workspace: Path) -> None:
    port = free_port()
    launched = ros2_launch(workspace, "real_push.launch.py", "sim:=true", "episodes:=2", "device:=cpu",
                           f"console_port:={port}", timeout=600)
    text = launched.stdout + launched.stderr
    assert launched.returncode == 0, text[-3000:]
    assert f"operator console: http://127.0.0.1:{port}/" in text   # the colcon install serves the page too
    assert "episode 1/2 (seed 1000000)" in text and "episode 2/2 (seed 1000001)" in text
    assert "done: " in text and "episodes succeeded" in text
