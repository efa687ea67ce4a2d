"""Foundation: the package is a real ament_python package and the layers keep their boundaries."""
from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROS_MODULE_PREFIXES = ("rclpy", "sensor_msgs", "geometry_msgs", "std_msgs", "std_srvs",
                       "diagnostic_msgs", "launch", "launch_ros", "rosidl", "builtin_interfaces")


def test_package_xml_is_format3_ament_python_with_real_dependencies():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.tag == "package" and root.attrib["format"] == "3"
    assert root.findtext("name") == "ibc_ros"
    assert root.find("export/build_type").text == "ament_python"
    exec_depends = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "geometry_msgs", "std_msgs", "std_srvs", "launch_ros"} <= exec_depends


def test_setup_installs_ament_marker_data_and_script_dirs():
    setup_src = (REPO / "setup.py").read_text()
    for needle in ("share/ament_index/resource_index/packages", "resource/{PACKAGE}", "package.xml",
                   "launch/*.py", "config/*.yaml", "urdf/*", "console_scripts"):
        assert needle in setup_src, needle
    assert (REPO / "resource" / "ibc_ros").is_file()
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert cfg["develop"]["script_dir"] == "$base/lib/ibc_ros"
    assert cfg["install"]["install_scripts"] == "$base/lib/ibc_ros"


def _modules_under(*packages: str) -> list[str]:
    modules = []
    for package in packages:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def test_ros_free_layers_import_no_ros():
    """ibc_core, cell and sim run without ROS: importing every module of theirs loads no ROS module."""
    ros_free = _modules_under("ibc_core", "cell", "sim")
    code = (
        "import importlib, sys\n"
        f"for m in {ros_free!r}:\n"
        "    importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {ROS_MODULE_PREFIXES!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "", f"ROS modules imported by ROS-free layers: {result.stdout}"


def check_layers(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "layers.py"), "check", "--root", str(root)],
                          capture_output=True, text=True, timeout=120)


def test_imports_point_down_the_layers_without_loops():
    """Issue 24: ibc_core <- cell <- sim <- ibc_ros <- ibc_cli, no module or subpackage loop."""
    result = check_layers(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "layers hold" in result.stdout


def _copy_layers(tmp_path: Path) -> Path:
    for layer in ("ibc_core", "cell", "sim", "ibc_ros", "ibc_cli"):
        shutil.copytree(REPO / layer, tmp_path / layer, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n\ndef _added():\n    {line}\n")


def test_layer_check_names_an_upward_import(tmp_path):
    """The check sees a wrong-way import even inside a function (a lazy import is still a dependency)."""
    root = _copy_layers(tmp_path)
    _append(root / "cell" / "paths.py", "from sim.tasks import make_env")
    result = check_layers(root)
    assert result.returncode == 1
    assert "cell/paths.py" in result.stdout and "cell.paths imports sim.tasks" in result.stdout, result.stdout


def test_layer_check_names_a_loop_and_ros_below_ibc_ros(tmp_path):
    root = _copy_layers(tmp_path)
    _append(root / "ibc_core" / "losses.py", "import ibc_core.policy")      # policy -> ... -> losses
    _append(root / "sim" / "particle.py", "import rclpy")
    result = check_layers(root)
    assert result.returncode == 1
    loop_lines = [line for line in result.stdout.splitlines() if line.startswith("import loop between modules")]
    assert loop_lines and "ibc_core.losses" in loop_lines[0] and "ibc_core.policy" in loop_lines[0], result.stdout
    assert any(line.startswith("import loop between subpackages") for line in result.stdout.splitlines())
    assert "sim.particle imports rclpy" in result.stdout, result.stdout


def test_architecture_doc_table_is_the_code_s_import_graph():
    """docs/ARCHITECTURE.md's package table is generated (scripts/layers.py draw); it must match the code."""
    code = ("import sys; sys.path.insert(0, 'scripts'); import layers; "
            "print(layers.documented_table() == layers.unit_table())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.stdout.strip() == "True", (result.stdout + result.stderr +
                                             "\nrun `python scripts/layers.py draw` and commit the result")
