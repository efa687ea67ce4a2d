"""Load the xArm6 + pusher description (urdf/xarm6_pusher.urdf) into a PyBullet client.

The URDF names its meshes the ROS way (package://xarm_description/...). PyBullet only looks
for meshes next to the URDF file, so the package URIs are rewritten to the copy of
xarm_description that ships in pybullet_data before loading. Sim physics and the
controller's IK both load the robot through this module, so they share one description.
"""
from __future__ import annotations

import hashlib
import tempfile
from functools import lru_cache
from pathlib import Path

import pybullet_data

from cell.paths import share_file

ROBOT_URDF = "xarm6_pusher.urdf"
ARM_JOINT_NAMES = ("joint1", "joint2", "joint3", "joint4", "joint5", "joint6")
TIP_LINK = "pusher_tip"
PUSHER_LINK = "pusher"
_PACKAGE_URI = "package://xarm_description/"


@lru_cache(maxsize=None)
def resolved_urdf_path(name: str = ROBOT_URDF) -> Path:
    """Path of a copy of urdf/<name> whose mesh URIs point into pybullet_data."""
    source = share_file("urdf", name)
    text = source.read_text()
    mesh_root = Path(pybullet_data.getDataPath()) / "xarm" / "xarm_description"
    if _PACKAGE_URI in text and not mesh_root.is_dir():
        raise FileNotFoundError(f"{source} needs xarm_description meshes, not found at {mesh_root}")
    resolved = text.replace(_PACKAGE_URI, mesh_root.as_posix() + "/")
    # Content-addressed file name: concurrent processes write identical files, never clash.
    digest = hashlib.sha1(resolved.encode()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / "ibc_ros_urdf" / f"{source.stem}_{digest}.urdf"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=target.parent, delete=False, suffix=".tmp") as tmp:
            tmp.write(resolved)
        Path(tmp.name).replace(target)
    return target


def link_index(client, body: int, link_name: str) -> int:
    """Index of a named link (its parent joint's index in PyBullet)."""
    for index in range(client.getNumJoints(body)):
        if client.getJointInfo(body, index)[12].decode() == link_name:
            return index
    raise KeyError(f"link {link_name!r} not found in body {body}")


def joint_indices(client, body: int, names: tuple[str, ...] = ARM_JOINT_NAMES) -> tuple[int, ...]:
    by_name = {client.getJointInfo(body, i)[1].decode(): i for i in range(client.getNumJoints(body))}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise KeyError(f"joints {missing} not found; the body has {sorted(by_name)}")
    return tuple(by_name[n] for n in names)
