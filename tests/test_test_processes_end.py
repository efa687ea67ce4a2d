"""Processes a test run starts end when the run ends, however it ends (issue #25 item 6: a
`timeout 55 pytest tests/fault` left a policy node and a camera flood running for 36 minutes).
An inner pytest run, with this suite's conftest, starts a child in a session of its own (as the
node helpers do) and is then killed; the child must be gone soon after."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import reaper

REPO = Path(__file__).resolve().parents[1]
INNER_TEST = '''
import os, subprocess, sys, time
def test_starts_a_child_and_waits():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    with open(os.environ["CHILD_PID_FILE"], "w") as out:
        out.write(str(child.pid))
    time.sleep(600)
'''
# Runs argv with SIGINT at its default action, as in a terminal's foreground job. A run started
# in the background by a non-interactive shell (`./run.sh test &`, nohup) inherits SIGINT
# ignored, and an exec'd process keeps an ignored signal: the inner run would never see Ctrl-C.
FOREGROUND = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.executable, [sys.executable] + sys.argv[1:])"


def wait_until(condition, seconds: float) -> bool:
    """Polls `condition` for up to `seconds` (a bound on waiting, not a timing assertion)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_children_end_with_the_test_run(how: signal.Signals, tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    pid_file = tmp_path / "child.pid"
    # Without this run's mark: the inner run is a test run of its own, with its own reaper.
    env = {k: v for k, v in os.environ.items() if k != reaper.MARK}
    # -c: this suite's pytest.ini (its plugin settings), although the inner test lies elsewhere.
    inner = subprocess.Popen([sys.executable, "-c", FOREGROUND, "-m", "pytest", "-q", "-c", str(REPO / "pytest.ini"), "-p", "tests.conftest",
                              "-p", "no:cacheprovider", str(tmp_path / "test_inner.py")], cwd=REPO, env={**env, "CHILD_PID_FILE": str(pid_file)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_until(pid_file.exists, 120), "the inner test never started its child"
        child = int(pid_file.read_text())
        assert reaper.alive(child)
        if how == signal.SIGINT:   # Ctrl-C reaches the whole foreground process group
            os.killpg(inner.pid, how)
        else:
            inner.send_signal(how)
        inner.wait(timeout=60)
        assert wait_until(lambda: not reaper.alive(child) or _zombie(child), 30), \
            f"child {child} outlived the test run ended by {how.name}"
    finally:
        if inner.poll() is None:
            inner.kill()
        if pid_file.exists() and reaper.alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
