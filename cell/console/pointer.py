"""Pointer messages from the console page, checked before anything reaches teleop. ROS-free.

The page sends {"type": "pointer", "u": .., "v": ..} in pixels of the camera image it shows
(camera/image_raw's own size) while the button is held, and {"type": "release"} when let go.
Anything else - a missing or non-numeric field, NaN or infinity, a point outside the image - is
refused with the reason, so it is logged and never becomes a setpoint.
"""
from __future__ import annotations

import math
from typing import Any


class PointerRejected(ValueError):
    """The pointer message is malformed or out of range; the message says why."""


def parse_pointer(message: Any, image_size: tuple[int, int] | None) -> tuple[float, float] | None:
    """(u, v) to point at, or None to release. ``image_size``: (width, height) of the newest frame."""
    if not isinstance(message, dict):
        raise PointerRejected(f"not a JSON object: {message!r:.80}")
    if message.get("type") == "release":
        return None
    if message.get("type") != "pointer":
        raise PointerRejected(f"unknown type {message.get('type')!r}")
    if image_size is None:
        raise PointerRejected("no camera frame yet: nothing to point at")
    uv = []
    for name, limit in (("u", image_size[0]), ("v", image_size[1])):
        value = message.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PointerRejected(f"{name} must be a number, got {value!r:.40}")
        if not math.isfinite(value):
            raise PointerRejected(f"{name} must be finite, got {value}")
        if not 0.0 <= value <= limit - 1:
            raise PointerRejected(f"{name}={value:.1f} lies outside the {image_size[0]}x{image_size[1]} image")
        uv.append(float(value))
    return uv[0], uv[1]
