"""Shared benchmark helpers: interleaved A/B timing, percentiles, machine description."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from ibc_core.models.mlp import int8_linear_available
from ibc_core.policy import cpu_has_fast_bfloat16


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()), "n": int(ms.size)}


def interleaved(candidates: dict[str, Callable[[int], object]], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Times every candidate once per repetition, rotating which goes first, so a change in
    background load hits all of them alike. Each callable gets the repetition index."""
    names = list(candidates)
    for rep in range(warmup):
        for name in names:
            candidates[name](rep)
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(repeats):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            candidates[name](rep)
            times[name].append(time.perf_counter() - start)
    return times


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    # "model name" alone hides what decides the fast paths (AVX512-BF16 / AMX vs AVX2 only).
    return {"cpu": cpu, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "fast_bfloat16": cpu_has_fast_bfloat16(), "int8_kernels": int8_linear_available(),
            "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average_start": list(os.getloadavg())}


def finish(report: dict[str, Any], json_path: Optional[str]) -> None:
    """Adds the end-of-run load average, prints the report, optionally writes it as JSON."""
    report["machine"]["load_average_end"] = list(os.getloadavg())
    text = json.dumps(report, indent=2)
    print(text)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(text + "\n")
