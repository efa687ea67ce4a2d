"""The arm's joint names as xarm_ros2 spells them, and joint positions picked out by name.

A sensor_msgs/JointState (ours, the sim's, or ros2_control's joint_state_broadcaster, which
lists its interfaces in no guaranteed order and may add a gripper's joints) is read by name,
never by position in the list.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from cell.control.robot_description import ARM_JOINT_NAMES


def joint_names(prefix: str = "") -> tuple[str, ...]:
    """joint1..joint6, behind xarm_ros2's `prefix` launch argument (e.g. "L_" for a dual cell)."""
    return tuple(prefix + name for name in ARM_JOINT_NAMES)


def positions_by_name(names: Sequence[str], positions: Sequence[float],
                      wanted: Sequence[str] = ARM_JOINT_NAMES) -> np.ndarray:
    """Finite positions in the order of ``wanted``, whatever the order of ``names`` (joints not
    wanted are ignored; no names = exactly len(wanted) positions in order). ValueError names what
    is wrong: a missing or repeated joint, names and positions of different lengths, a non-finite
    value."""
    if not names:
        if len(positions) != len(wanted):
            raise ValueError(f"unnamed joint positions must be {len(wanted)} values, got {len(positions)}")
        values = np.asarray(positions, dtype=float)
    else:
        if len(names) != len(positions):
            raise ValueError(f"{len(names)} joint names but {len(positions)} positions")
        if len(set(names)) != len(names):
            raise ValueError(f"repeated joint names {list(names)}")
        by_name = dict(zip(names, positions))
        missing = [name for name in wanted if name not in by_name]
        if missing:
            raise ValueError(f"joint(s) {missing} missing (got {list(names)})")
        values = np.asarray([by_name[name] for name in wanted], dtype=float)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"non-finite joint positions {values.tolist()}")
    return values
