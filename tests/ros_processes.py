"""Start Python code or node executables as separate OS processes for ROS tests, and make sure
they are gone afterwards (cell.processes.stop, as the bringup supervisor does). Real processes,
real DDS: nothing here touches rclpy."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from cell.processes import stop  # also what tests import from here


@contextmanager
def running(args: Sequence[str], log_path: Path | None = None,
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """Run a command for the duration of a with-block; SIGINT, then SIGKILL, on exit."""
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    try:
        yield proc
    except BaseException:
        # A failing test shows what the node said (pytest prints captured stdout on failure).
        if log_path:
            print(f"--- last lines of {log_path} ---\n{Path(log_path).read_text()[-3000:]}")
        raise
    finally:
        stop(proc)
        if log_path:
            log.close()


def python_script(code: str) -> list[str]:
    """argv that runs a dedented Python snippet in a fresh interpreter."""
    return [sys.executable, "-c", textwrap.dedent(code)]

