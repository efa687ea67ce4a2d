"""Test-wide setup: every pytest run gets its own ROS 2 domain on loopback, so parallel runs
(and a developer's running stack) never hear each other's nodes."""
from __future__ import annotations

import os
import random

# Must be set before any rclpy import in this process and inherited by the node processes
# tests start. 1..100 keeps Fast DDS ports (7400 + 250 * domain) in range.
if "IBC_TEST_KEEP_DOMAIN" not in os.environ:
    os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid()).randint(1, 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")  # Humble's spelling of the same
os.environ.setdefault("PYTHONUNBUFFERED", "1")
