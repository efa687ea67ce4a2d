"""The cell's timing, declared once (config/timing.yaml): the control period at which the policy
and teleop publish setpoints and the rate at which the controller interpolates them.

    timing = load_timing()                   # cached; the installed config/timing.yaml
    timing.check("rate_hz", 10.0, "control_hz")   # ValueError: the given copy disagrees

Everything else that needs these numbers takes them from here; anything that is *given* its own
copy (a node parameter, an older controller YAML, a push task's config, a dataset's meta.json)
calls ``check`` at start-up or load, so two halves of the cell never run at different rates."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ibc_core.config_io import load_config, owned_by
from cell.paths import share_file

TIMING_FILE = "timing.yaml"


def timing_default(name: str) -> Any:
    """A dataclass field whose default is the cell timing's ``name`` (a CellTiming attribute)."""
    return owned_by(f"config/{TIMING_FILE}", default_factory=lambda: getattr(load_timing(), name))


@dataclass(frozen=True)
class CellTiming:
    # No defaults: a value written here would be a second copy of config/timing.yaml.
    control_period_s: float
    controller_rate_hz: float

    def validate(self) -> None:
        if not (self.control_period_s > 0 and self.controller_rate_hz > 0):
            raise ValueError(f"control_period_s and controller_rate_hz must be positive, got "
                             f"{self.control_period_s} and {self.controller_rate_hz}")
        # The controller, the sim env and the sim node step a whole number of ticks per period.
        ticks = self.control_period_s * self.controller_rate_hz
        if abs(ticks - round(ticks)) > 1e-9:
            raise ValueError(f"control_period_s {self.control_period_s} s is not a whole number of "
                             f"controller cycles at controller_rate_hz {self.controller_rate_hz}")

    @property
    def control_hz(self) -> float:
        return 1.0 / self.control_period_s

    @property
    def controller_period_s(self) -> float:
        return 1.0 / self.controller_rate_hz

    @property
    def ticks_per_period(self) -> int:
        return round(self.control_period_s * self.controller_rate_hz)

    def check(self, field: str, given: float, owner: str) -> None:
        """ValueError naming ``field``, the value given, the owner file and its values unless the
        given copy equals ``owner`` (control_period_s, control_hz, controller_rate_hz or
        controller_period_s). Relative tolerance: 1 / 0.2 and 5.0 are the same rate."""
        expected = getattr(self, owner)
        if not math.isclose(given, expected, rel_tol=1e-9):
            raise ValueError(f"{field} {given:g} disagrees with the cell's timing in {timing_file()} "
                             f"(control_period_s {self.control_period_s:g} = {self.control_hz:g} Hz, "
                             f"controller_rate_hz {self.controller_rate_hz:g}): leave {field} out or make it "
                             f"{expected:g}")


def timing_file() -> Path:
    return share_file("config", TIMING_FILE)


@lru_cache(maxsize=1)
def load_timing() -> CellTiming:
    """The installed config/timing.yaml, read once per process."""
    return load_config(CellTiming, timing_file())
