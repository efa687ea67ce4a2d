"""The paper's Fig. 6 on this machine: success vs dimension on the N-D particle task.

For every dimension N: oracle demos (`ibc-data generate --task particle_<N>d`), then one
training per method (`ibc-train train_particle` + the method's overrides) and an evaluation
on held-out seeds (`ibc-eval --json`). Each step is the project's own CLI, run as a
subprocess, and printed before it runs, so any cell can be reproduced by hand. Finished cells
(their eval JSON exists) are skipped and a finished training (its policy.pt exists) is
evaluated without retraining, so an interrupted sweep resumes where it stopped.

    ./run.sh python scripts/particle_sweep.py --out runs/particle_sweep
    ./run.sh python scripts/particle_sweep.py --dims 2 8 --methods langevin mse --steps 2000

Writes OUT/summary.json (every eval summary), OUT/results.md (successes per method and N) and
OUT/success_vs_dim.png.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# Per-method overrides of config/train_particle.yaml (appendix D.3 is the base). As in the
# reference's particle configs, only Langevin trains with the gradient penalty (the
# autoregressive loss never adds it) and plain DFO searches with 512 samples.
METHODS: dict[str, list[str]] = {
    "langevin": [],
    "ar_dfo": ["ebm.sampler=autoregressive", "ebm.dfo.samples=1024"],
    "dfo": ["ebm.sampler=dfo", "ebm.gradient_penalty.enabled=false", "ebm.dfo.samples=512"],
    "mse": ["model.kind=mse"],
    # ebm_theory_vs_practice's counter-example strategies (issue #9), same Langevin inference:
    "marginal": ["ebm.marginal.enabled=true"],
    "max_entropy": ["ebm.max_entropy_weight=1.0"],
}
LABELS = {"langevin": "IBC Langevin", "ar_dfo": "IBC autoregressive DFO", "dfo": "IBC DFO",
          "mse": "MSE", "marginal": "Langevin + marginal action sampler",
          "max_entropy": "Langevin + max-entropy regulariser"}
PAPER_FIG6 = ["langevin", "ar_dfo", "dfo", "mse"]

# CPU budget: the paper's 128x16 spectral-norm ResNet with 64 counter-examples x 50 Langevin
# iterations runs at 0.11 steps/s on one core here; this network trains at ~14 steps/s.
SMALL_NETWORK = [
    "model.mlp.width=128", "model.mlp.depth=2", "model.mlp.resnet=false",
    "model.mlp.spectral_norm=false", "ebm.counter_examples=16", "ebm.langevin.iterations=10",
    "ebm.langevin.inference_samples=256",
]


@dataclass(frozen=True)
class Cell:
    dim: int
    method: str

    @property
    def task(self) -> str:
        return f"particle_{self.dim}d"

    @property
    def name(self) -> str:
        return f"{self.task}_{self.method}"


def cli(name: str) -> str:
    """The project's console script next to this Python (works without an activated venv)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def run_logged(command: list[str], log: Path) -> None:
    """Runs one CLI step, its output in `log`; a failure stops the sweep with the log named."""
    print("$", shlex.join([Path(command[0]).name, *command[1:]]), flush=True)
    with log.open("a") as out:
        completed = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
    if completed.returncode != 0:
        raise RuntimeError(f"{command[0]} failed (exit {completed.returncode}); see {log}")


def generate_data(dim: int, args: argparse.Namespace) -> Path:
    data = args.out / "data" / f"particle_{dim}d"
    if not (data / "meta.json").exists():
        run_logged([cli("ibc-data"), "generate", "--task", f"particle_{dim}d", "--episodes",
                    str(args.episodes), "--out", str(data), "--seed", str(args.data_seed)],
                   args.out / "logs" / f"data_{dim}d.log")
    return data


def run_cell(cell: Cell, data: Path, args: argparse.Namespace) -> dict:
    run_dir = args.out / "runs" / cell.name
    summary = args.out / "eval" / f"{cell.name}.json"
    log = args.out / "logs" / f"{cell.name}.log"
    if not summary.exists():
        train_seconds = None
        if not (run_dir / "policy.pt").exists():   # ibc-train writes it when training ends
            started = time.monotonic()
            overrides = ([] if args.paper_network else SMALL_NETWORK) + METHODS[cell.method]
            run_logged([cli("ibc-train"), "train_particle", f"data.path={data}", f"run.out_dir={run_dir}",
                        f"optim.steps={args.steps}", "run.threads=1", *overrides, *args.set], log)
            train_seconds = round(time.monotonic() - started, 1)
        run_logged([cli("ibc-eval"), "--checkpoint", str(run_dir / "policy.pt"), "--task", cell.task,
                    "--episodes", str(args.eval_episodes), "--device", "cpu", "--threads", "1", "--json",
                    str(summary)], log)
        result = json.loads(summary.read_text())
        result["train_seconds"] = train_seconds
        summary.write_text(json.dumps(result, indent=2))
    return {"dim": cell.dim, "method": cell.method, **json.loads(summary.read_text())}


def write_report(results: list[dict], args: argparse.Namespace) -> None:
    (args.out / "summary.json").write_text(json.dumps(results, indent=2))
    dims = sorted({r["dim"] for r in results})
    methods = [m for m in METHODS if any(r["method"] == m for r in results)]
    by_cell = {(r["dim"], r["method"]): r for r in results}
    lines = ["| method | " + " | ".join(f"{d}-D" for d in dims) + " |",
             "|---|" + "---|" * len(dims)]
    for method in methods:
        cells = []
        for dim in dims:
            r = by_cell.get((dim, method))
            cells.append("—" if r is None else f"{r['successes']}/{r['episodes']}")
        lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(results, dims, methods, args.out / "success_vs_dim.png")


def plot(results: list[dict], dims: list[int], methods: list[str], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for method in methods:
        rows = sorted((r for r in results if r["method"] == method), key=lambda r: r["dim"])
        rates = [r["success_rate"] for r in rows]
        # max(0, .): the interval's ends can sit a rounding error inside the rate
        low = [max(0.0, r["success_rate"] - r["wilson95"][0]) for r in rows]
        high = [max(0.0, r["wilson95"][1] - r["success_rate"]) for r in rows]
        axes.errorbar([r["dim"] for r in rows], rates, yerr=[low, high], marker="o", capsize=3,
                      label=LABELS[method])
    axes.set_xscale("log", base=2)
    axes.set_xticks(dims, [str(d) for d in dims])
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel("particle dimension N")
    axes.set_ylabel("success rate (95% Wilson)")
    axes.set_title("N-D particle (paper Fig. 6)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--out", type=Path, default=Path("runs/particle_sweep"))
    parser.add_argument("--dims", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=PAPER_FIG6,
                        help=f"default: the paper's Fig. 6 methods {PAPER_FIG6}")
    parser.add_argument("--episodes", type=int, default=2000, help="demos per dimension")
    parser.add_argument("--data-seed", type=int, default=0, help="first training seed")
    parser.add_argument("--steps", type=int, default=10000, help="training steps per cell")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2, help="cells trained in parallel")
    parser.add_argument("--paper-network", action="store_true",
                        help="keep train_particle.yaml's 128x16 network (hours per cell on a CPU)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra ibc-train overrides for every cell")
    args = parser.parse_args(argv)
    bad = [d for d in args.dims if d < 1]
    if bad:
        parser.error(f"--dims must be >= 1, got {bad}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for folder in ("data", "runs", "eval", "logs"):
        (args.out / folder).mkdir(parents=True, exist_ok=True)
    data = {dim: generate_data(dim, args) for dim in args.dims}
    cells = [Cell(dim, method) for dim in args.dims for method in args.methods]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda cell: run_cell(cell, data[cell.dim], args), cells))
    write_report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
