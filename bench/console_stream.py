"""The operator console's image stream in a real browser: frames shown per second and the
image-to-browser latency, against the camera's own publish rate measured in the same run.

Starts `ibc-ros launch record_demos sim:=true` (real nodes, real DDS), opens the console in
Debian's Chromium (headless, through chromium-driver), and for --seconds reads the console's
per-browser figures: the frames the page drew and acknowledged per second, and for each frame
the time from the console node's receipt of the ROS image to the arrival of the page's
acknowledgement (an upper bound of image-to-screen: it includes the ack's trip back). The
reference is the rate camera/image_raw is published at, counted by the console in the same run:
ratio = frames shown / frames published. Then a second browser opens (one controls, one watches)
and both are measured again.

    ./run.sh python -m bench.console_stream --seconds 30 --json bench/results/console_stream.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional, Sequence

from bench.common import finish, machine
from cell.processes import stop
from tests.console_browser import ConsolePage
from tests.test_ros_bringup import free_port


def console_state(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=10) as reply:
        return json.loads(reply.read())


def measure(port: int, pages: list[ConsolePage], seconds: float) -> dict[str, Any]:
    """Frames each page drew over `seconds` (page counters), the console's latency figures, and
    the camera's publish rate sampled over the same window."""
    shown_before = [page.js("return framesShown") for page in pages]
    published, began = [], time.monotonic()
    while time.monotonic() - began < seconds:
        time.sleep(1.0)
        published.append(console_state(port)["rates"]["camera/image_raw"])
    elapsed = time.monotonic() - began
    state = console_state(port)
    browsers = []
    for page, before in zip(pages, shown_before):
        client = str(page.js("return clientId"))
        fps = (page.js("return framesShown") - before) / elapsed
        browsers.append({"console": client, "seat": state["stream"][client]["role"], "fps_shown": round(fps, 2),
                         "latency_ms": state["stream"][client]["latency_ms"]})
    camera_hz = sum(published) / len(published)
    return {"seconds": round(elapsed, 1), "camera_published_hz": round(camera_hz, 2),
            "browsers": [{**b, "ratio_to_published": round(b["fps_shown"] / camera_hz, 3)} for b in browsers]}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement window per browser count")
    parser.add_argument("--json", default=None, help="write the report here")
    args = parser.parse_args(argv)
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="console_bench_")) / "stack.log"
    proc = subprocess.Popen([sys.executable, "-m", "ibc_cli.ros", "launch", "record_demos", "sim:=true",
                             f"console_port:={port}", f"output_dir:={log.parent / 'bags'}"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    pages: list[ConsolePage] = []
    report: dict[str, Any] = {"machine": machine(), "stack": "record_demos sim:=true (camera_hz 12, 320x180)"}
    try:
        deadline = time.monotonic() + 120
        while "scene of seed" not in log.read_text():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"the stack did not come up; see {log}")
            time.sleep(0.5)
        for count in (1, 2):
            page = ConsolePage(f"http://127.0.0.1:{port}/")
            page.wait(lambda: page.frames_drawn() != (0, 0), 60, "the first frame")
            pages.append(page)
            time.sleep(5.0)   # warm-up: the page's JIT, the first JPEGs
            report[f"{count}_browser{'s' if count > 1 else ''}"] = measure(port, pages, args.seconds)
    finally:
        for page in pages:
            page.close()
        stop(proc, timeout=60)
    finish(report, args.json)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
