"""Stopping child processes that were started in their own session (`start_new_session=True`),
so that a signal to their process group also reaches whatever they started. ROS-free: the
bringup supervisor, the benchmarks and the tests all stop nodes the same way.

SIGINT first, because that is what a node (rclpy) treats as a clean shutdown; SIGKILL only for
a group that ignores it for `timeout` seconds, so no caller can hang on a stuck node."""
from __future__ import annotations

import os
import signal
import subprocess


def interrupt(proc: subprocess.Popen) -> None:
    """SIGINT to proc's process group, unless proc has already exited (then its pid may be
    reused by an unrelated process)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)


def wait_or_kill(proc: subprocess.Popen, timeout: float) -> bool:
    """Waits up to `timeout` s for proc to exit; past that, SIGKILLs its process group and reaps
    it. Returns whether it had to be killed."""
    try:
        proc.wait(timeout=timeout)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """Interrupts proc, escalating to SIGKILL after `timeout` s; returns its exit status."""
    interrupt(proc)
    wait_or_kill(proc, timeout)
    return proc.returncode
