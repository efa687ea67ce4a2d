"""Redraw the particle figure (paper Fig. 6) from several sweeps' summary.json files, each its own
series (line style and marker), e.g. the CPU sweep beside the cells a GPU ran.

    ./run.sh python scripts/particle_figure.py --out docs/figures/particle_success_vs_dim.png \\
        "CPU 128x2, 5k steps=docs/figures/particle_cpu_session6.json" \\
        "H200 paper network, 240 s=bench/results/gpu_h200/particle_summary.json"

A summary is a list of {"dim", "method", "successes", "episodes"} (what particle_sweep.py
writes; the success rate and its 95 % Wilson interval are recomputed from the counts).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from particle_sweep import METHODS, plot
from sim.rollout import wilson_interval


def load_series(spec: str) -> tuple[str, list[dict]]:
    label, separator, path = spec.rpartition("=")
    if not separator or not label:
        raise ValueError(f"series {spec!r} must be LABEL=PATH")
    rows = json.loads(Path(path).read_text())
    for row in rows:
        if row.get("method") not in METHODS:
            raise ValueError(f"{path}: unknown method {row.get('method')!r} (one of {', '.join(METHODS)})")
        row["success_rate"] = row["successes"] / row["episodes"]
        row["wilson95"] = list(wilson_interval(row["successes"], row["episodes"]))
    return label, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("series", nargs="+", metavar="LABEL=PATH")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = parser.parse_args(argv)
    try:
        series = [load_series(spec) for spec in args.series]
    except (OSError, ValueError, KeyError) as exc:
        print(f"particle_figure: error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(series, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
