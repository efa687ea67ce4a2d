"""urdf/pusher.urdf (the tool) and urdf/xarm6_pusher.urdf (arm + tool, used by sim physics
and IK) describe the same pusher."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from cell.paths import share_file

TOOL_PARTS = ("pusher", "pusher_tip")


def _parts(root: ET.Element) -> dict[str, str]:
    parts = {}
    for element in root:
        name = element.get("name", "")
        if element.tag == "link" and name in TOOL_PARTS or element.tag == "joint" and name.startswith("pusher"):
            copy = ET.fromstring(ET.tostring(element))
            for parent in copy.iter("parent"):
                parent.set("link", "MOUNT" if parent.get("link") in ("pusher_mount", "link6") else parent.get("link"))
            parts[f"{element.tag}:{name}"] = ET.tostring(copy).decode().replace(" ", "").replace("\n", "")
    return parts


def test_robot_description_carries_the_same_pusher_as_the_tool_file():
    tool = _parts(ET.parse(share_file("urdf", "pusher.urdf")).getroot())
    robot = _parts(ET.parse(share_file("urdf", "xarm6_pusher.urdf")).getroot())
    assert set(tool) == {"link:pusher", "link:pusher_tip", "joint:pusher_joint", "joint:pusher_tip_joint"}
    assert tool == robot
