"""Ends every process a test run started once that run has ended, however it ended (normal exit,
Ctrl-C, SIGTERM, SIGKILL). tests/conftest.py marks the run's environment with IBC_TEST_RUN=<id>,
which every process it starts inherits (nodes, stacks, and the nodes those start), and starts
this watcher in a session of its own, outside that environment:

    python -m tests.reaper <pid of the test run> <id>

When the run's process is gone, the watcher sends SIGTERM to every process whose environment
holds the mark, then SIGKILL to those still there after a grace period, and exits.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

MARK = "IBC_TEST_RUN"
GRACE_SECONDS = 5.0


def marked_processes(run_id: str) -> list[int]:
    """Pids (other than this one) whose environment has MARK=run_id."""
    needle = f"{MARK}={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environment = (entry / "environ").read_bytes()
        except OSError:   # gone meanwhile, or not ours to read
            continue
        if needle in environment.split(b"\0"):
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap(run_id: str) -> int:
    """SIGTERM, a grace period, SIGKILL; returns how many processes were signalled."""
    pids = marked_processes(run_id)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.1)
    for pid in marked_processes(run_id):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


def main(argv: list[str]) -> int:
    watched, run_id = int(argv[0]), argv[1]
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the terminal's Ctrl-C is for the test run
    while alive(watched):
        time.sleep(0.5)
    reap(run_id)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
