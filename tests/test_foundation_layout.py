"""Foundation: the package is a real ament_python package and the layers keep their boundaries."""
from __future__ import annotations

import configparser
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
    """ibc_core, sim and the logic modules under ibc_ros run without ROS (tests import them plainly)."""
    ros_free = _modules_under("ibc_core", "sim") + [
        m for m in _modules_under("ibc_ros")
        if not m.startswith(("ibc_ros.nodes", "ibc_ros.bringup")) and m != "ibc_ros.nodes"]
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
