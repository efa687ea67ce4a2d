"""Test-wide setup: every pytest run gets its own ROS 2 domain on loopback, so parallel runs
(and a developer's running stack) never hear each other's nodes; and the fixture that keeps
training tests on one torch thread."""
from __future__ import annotations

import fcntl
import os
import random
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from tests import reaper


def _claim_free_domain() -> int:
    """First domain in a pid-seeded order whose lock file no other live pytest holds. The lock
    is an flock on an open file kept for this process's lifetime: released even on SIGKILL."""
    candidates = list(range(1, 101))  # 1..100 keeps Fast DDS ports (7400 + 250 * domain) in range
    random.Random(os.getpid()).shuffle(candidates)
    for domain in candidates:
        handle = open(os.path.join(tempfile.gettempdir(), f"ibc_ros_test_domain_{domain}.lock"), "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _held_locks.append(handle)
        return domain
    raise RuntimeError("all ROS test domains 1..100 are taken by other pytest runs")


_held_locks: list = []
# Must be set before any rclpy import in this process; node processes started by tests inherit it.
if "IBC_TEST_KEEP_DOMAIN" not in os.environ:
    os.environ["ROS_DOMAIN_ID"] = str(_claim_free_domain())
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")  # Humble's spelling of the same
os.environ.setdefault("PYTHONUNBUFFERED", "1")


def _start_reaper() -> None:
    """Processes started by this run (and their children) end when the run ends, however it
    ends: they inherit IBC_TEST_RUN, and tests/reaper.py, started outside it, ends them."""
    if reaper.MARK in os.environ:   # a test's own inner pytest run: the outer reaper covers it
        return
    run_id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    watcher_env = dict(os.environ)
    subprocess.Popen([sys.executable, "-m", "tests.reaper", str(os.getpid()), run_id], env=watcher_env,
                     cwd=Path(__file__).resolve().parents[1], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ[reaper.MARK] = run_id


_start_reaper()


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """torch on one thread for the test (`pytestmark = pytest.mark.usefixtures(...)` in files
    that train): the CI machine has 2 cores shared with other tests."""
    import torch  # here, not at the top: the ROS environment above is set before any heavy import
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
