"""Soak: the simulated stack left running (`ibc-ros launch real_push sim:=true episodes:=0`, the
shipped pixel policy, real nodes over real DDS) for --minutes. Every --every seconds it reads the
resident memory (VmRSS) of every node process the bringup started; from the stack's log it counts
the episodes reported, lock-step stalls (`lockstep: no setpoint ...`) and error lines. At the end
Ctrl-C (SIGINT) stops the stack, whose exit status and final summary are recorded too.

    ./run.sh python -m bench.soak --minutes 30 --json bench/results/soak.json

Memory verdict per node: growth of RSS from the end of the warm-up (--warmup-minutes) to the end,
against --rss-bound-mb (default 20 MB): "flat" when within it.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from bench.common import finish, machine

STARTED = re.compile(r"\[ibc-ros\] started (\w+) \(pid (\d+)\)")
EPISODE = re.compile(r"episode (\d+) \(seed (\d+)\): (SUCCESS|failure)")
STALL = "lockstep: no setpoint"


def rss_mb(pid: int) -> Optional[float]:
    """Resident memory of a process in MB, None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def memory_verdict(samples: list[tuple[float, float]], warmup_s: float, bound_mb: float) -> dict[str, Any]:
    """(seconds since start, MB) samples of one node -> first/last/max and growth after warm-up."""
    after = [mb for t, mb in samples if t >= warmup_s] or [samples[-1][1]]
    growth = after[-1] - after[0]
    return {"first_mb": round(samples[0][1], 1), "after_warmup_mb": round(after[0], 1), "last_mb": round(after[-1], 1),
            "max_mb": round(max(mb for _, mb in samples), 1), "growth_after_warmup_mb": round(growth, 1),
            "flat": abs(growth) <= bound_mb, "samples": len(samples)}


def soak(args: argparse.Namespace) -> dict[str, Any]:
    log_path = Path(args.log)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ibc_cli.ros", "launch", "real_push", "sim:=true", "episodes:=0",
            f"policy:={args.policy}", f"device:={args.device}", *args.launch]
    started, conditions = time.monotonic(), machine()   # load average at the start
    with log_path.open("w") as log:
        stack = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    memory: dict[str, list[tuple[float, float]]] = {}
    try:
        while time.monotonic() - started < args.minutes * 60 and stack.poll() is None:
            time.sleep(args.every)
            now = time.monotonic() - started
            for name, pid in STARTED.findall(log_path.read_text()):
                mb = rss_mb(int(pid))
                if mb is not None:
                    memory.setdefault(name, []).append((now, mb))
            print(f"{now / 60:5.1f} min: " + ", ".join(f"{n} {s[-1][1]:.0f} MB" for n, s in memory.items()),
                  flush=True)
    except KeyboardInterrupt:   # Ctrl-C / SIGTERM: stop early, still report what was measured
        print("interrupted: stopping the stack", flush=True)
    finally:
        ended_early = stack.poll() is not None
        if not ended_early:
            os.killpg(stack.pid, signal.SIGINT)
        try:
            code = stack.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
            code = stack.wait()
    text = log_path.read_text()
    episodes = EPISODE.findall(text)
    return {"benchmark": "soak", "command": " ".join(argv[2:]), "machine": conditions,
            "minutes": round((time.monotonic() - started) / 60, 2), "stack_ended_by_itself": ended_early,
            "exit_code": code, "episodes_reported": len(episodes),
            "successes": sum(verdict == "SUCCESS" for *_, verdict in episodes),
            "episode_numbers_contiguous": [int(n) for n, *_ in episodes] == list(range(1, len(episodes) + 1)),
            "lockstep_stalls": text.count(STALL), "error_lines": sum("[ERROR]" in line or "[FATAL]" in line
                                                                    for line in text.splitlines()),
            "interrupted_summary": next((line.strip() for line in text.splitlines() if "interrupted: " in line), None),
            "rss_bound_mb": args.rss_bound_mb, "warmup_minutes": args.warmup_minutes,
            "memory": {name: memory_verdict(samples, args.warmup_minutes * 60, args.rss_bound_mb)
                       for name, samples in memory.items()},
            "log": str(log_path)}


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between memory samples")
    parser.add_argument("--warmup-minutes", type=float, default=5.0, help="memory growth counts from here")
    parser.add_argument("--rss-bound-mb", type=float, default=20.0, help="allowed RSS growth after warm-up")
    parser.add_argument("--policy", default="policies/push_pixels.pt")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--log", default="out/soak/stack.log")
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("launch", nargs="*", help="more launch arguments (name:=value)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.every <= 0 or args.warmup_minutes < 0 or args.rss_bound_mb < 0:
        parser.error("--minutes and --every must be > 0, --warmup-minutes and --rss-bound-mb >= 0")
    # Ctrl-C or SIGTERM (also when started in the background, where SIGINT comes ignored): stop
    # the stack and still report what was measured.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    finish(soak(args), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
