"""The operator console's settings (config/console.yaml; ConsoleConfig), ROS-free."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cell.teleop.mapping import TableMappingConfig

# Actions the page can ask for, and who may: "control" = only the console holding control;
# "any" = every open console (a watcher must be able to stop the arm).
ACTIONS: dict[str, str] = {
    "start": "control", "stop": "control", "discard": "control", "success": "control",
    "next_scene": "control", "reset": "control", "release_estop": "control", "estop": "any",
}
# Only these exist in the monitoring console of real_push (no recorder, no teleop there).
MONITOR_ACTIONS = ("estop", "release_estop", "reset")


@dataclass
class ConsoleConfig(TableMappingConfig):
    host: str = "127.0.0.1"         # bind address; anything but loopback requires a token
    port: int = 8765
    token: str = ""                 # "" = none on loopback, generated and printed otherwise
    role: Literal["teleop", "monitor"] = "teleop"   # teleop: record_demos; monitor: real_push (no pointer)
    stream_hz: float = 30.0         # at most this many camera frames a second to each browser
    jpeg_quality: int = 80
    state_hz: float = 5.0           # status updates to the page
    pointer_resend_s: float = 0.1   # the page repeats a held pointer this often: teleop's
                                    # pointer_timeout_s (1 s) then only fires when the page is gone

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1-65535, got {self.port}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 1-100, got {self.jpeg_quality}")
        for name in ("stream_hz", "state_hz", "pointer_resend_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.pointer_resend_s > 0.5:
            raise ValueError(f"pointer_resend_s must be <= 0.5 s (well under teleop's pointer_timeout_s), "
                             f"got {self.pointer_resend_s}")

    def allowed_actions(self) -> tuple[str, ...]:
        return tuple(ACTIONS) if self.role == "teleop" else MONITOR_ACTIONS
