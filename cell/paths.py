"""Locate the package's shared files (urdf/, config/, launch/, policies/) without ROS.

Works for a source checkout or editable pip install (files next to the code), a pip
install (<prefix>/share/ibc_ros) and a colcon install (install/ibc_ros/share/ibc_ros).
IBC_ROS_SHARE overrides all of them.
"""
from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = "ibc_ros"


@lru_cache(maxsize=1)
def share_dir() -> Path:
    override = os.environ.get("IBC_ROS_SHARE")
    if override:
        return Path(override)
    here = Path(__file__).resolve()
    candidates = [here.parent.parent]  # source checkout / editable install
    candidates += [parent / "share" / PACKAGE for parent in here.parents]  # colcon layout
    candidates.append(Path(sys.prefix) / "share" / PACKAGE)  # pip install
    for candidate in candidates:
        if (candidate / "package.xml").is_file() and (candidate / "urdf").is_dir():
            return candidate
    raise FileNotFoundError(
        f"cannot find the {PACKAGE} share directory (looked in {[str(c) for c in candidates]}); "
        "set IBC_ROS_SHARE to the folder holding package.xml, urdf/ and config/"
    )


def share_file(*parts: str) -> Path:
    """Path of a shared file, e.g. share_file('urdf', 'xarm6_pusher.urdf'); raises if absent."""
    path = share_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found in the {PACKAGE} share directory")
    return path
