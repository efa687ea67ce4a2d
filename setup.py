"""ibc_ros: ament_python package (colcon on a ROS 2 install) and pip package (.venv)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "ibc_ros"

# ROS nodes: `ros2 run ibc_ros <name>` and, in the pip environment, a command of the same name.
NODES = {
    "camera_node": "ibc_ros.nodes.camera_node:main",
    "policy_node": "ibc_ros.nodes.policy_node:main",
    "controller_node": "ibc_ros.nodes.controller_node:main",
    "xarm_driver_node": "ibc_ros.nodes.xarm_driver_node:main",
    "sim_node": "ibc_ros.nodes.sim_node:main",
    "teleop_node": "ibc_ros.nodes.teleop_node:main",
    "recorder_node": "ibc_ros.nodes.recorder_node:main",
    "console_node": "ibc_ros.nodes.console_node:main",
}
# Command-line tools.
CLIS = {
    "ibc-train": "ibc_cli.train:main",
    "ibc-bench": "ibc_cli.bench:main",
    "ibc-data": "ibc_cli.data:main",
    "ibc-eval": "ibc_cli.evaluate:main",
    "ibc-ros": "ibc_cli.ros:main",
    "ibc-replay": "ibc_cli.replay:main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["ibc_core*", "cell*", "sim*", "ibc_ros*", "ibc_cli*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/urdf", glob("urdf/*")),
        (f"share/{PACKAGE}/policies", glob("policies/*")),
    ],
    package_data={"": ["*.yaml"], "cell.console": ["web/*"]},
    install_requires=["setuptools"],  # pinned runtime dependencies: requirements.txt
    zip_safe=True,
    maintainer="ibc_ros developers",
    maintainer_email="dev@ibc-ros.invalid",
    description="Implicit Behavioral Cloning pushing stack for xArm6 + RealSense, with a PyBullet twin",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [f"{name} = {target}" for name, target in {**NODES, **CLIS}.items()],
    },
)
