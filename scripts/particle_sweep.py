"""The paper's Fig. 6 on this machine: success vs dimension on the N-D particle task.

For every dimension N: oracle demos (`ibc-data generate --task particle_<N>d`), then one
training per method (`ibc-train train_particle` + the method's overrides) and an evaluation
on held-out seeds (`ibc-eval --json`). Each step is the project's own CLI, run as a
subprocess, and printed before it runs, so any cell can be reproduced by hand. Finished cells
(their eval JSON exists) are skipped and a finished training (its policy.pt exists) is
evaluated without retraining, so an interrupted sweep resumes where it stopped.

    ./run.sh python scripts/particle_sweep.py --out runs/particle_sweep
    ./run.sh python scripts/particle_sweep.py --dims 2 8 --methods langevin mse --steps 2000
    # on a GPU, the paper's network, each training stopped after 5 minutes, batched evaluation:
    ./run.sh python scripts/particle_sweep.py --paper-network --steps 50000 --device cuda \
        --max-train-seconds 300 --eval-batch 100 --jobs 8 --data-workers 8
    # extra ibc-train overrides for every cell: KEY=VALUE words, as ibc-train takes them
    ./run.sh python scripts/particle_sweep.py model.mlp.depth=2 ebm.counter_examples=8 --dims 2 4

Writes OUT/summary.json (every eval summary, with the training's steps and seconds; rewritten
as each cell ends, so an interrupted sweep keeps what it finished), OUT/results.md (successes
per method and N) and OUT/success_vs_dim.png. A cell that fails is reported at the end and does
not stop the others.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from ibc_cli.common import TRAINING, add_override_words, parse_command_line, parse_overrides

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

# --paper-network: appendix D.3's recipe where it differs per method (train_particle.yaml holds
# the Langevin one); its explicit MSE-BC trains at batch 512, decay every 200 steps, dropout 0.1.
PAPER_RECIPES: dict[str, list[str]] = {
    "mse": ["optim.batch_size=512", "optim.lr_decay_steps=200", "model.mlp.dropout=0.1"],
}

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


# The console scripts the sweep runs and their modules (setup.py): without an installed package
# (a bare GPU machine with the checkout only) the module runs as `python -m`.
MODULES = {"ibc-data": "ibc_cli.data", "ibc-train": "ibc_cli.train", "ibc-eval": "ibc_cli.evaluate"}


def cli(name: str) -> list[str]:
    """The project's console script next to this Python (works without an activated venv), else
    its module under this Python."""
    beside = Path(sys.executable).parent / name
    return [str(beside)] if beside.exists() else [sys.executable, "-m", MODULES[name]]


def run_logged(name: str, arguments: list[str], log: Path) -> None:
    """Runs one CLI step, its output in `log`; a failure raises with the log named."""
    print("$", shlex.join([name, *arguments]), flush=True)
    with log.open("a") as out:
        completed = subprocess.run([*cli(name), *arguments], stdout=out, stderr=subprocess.STDOUT)
    if completed.returncode != 0:
        raise RuntimeError(f"{name} failed (exit {completed.returncode}); see {log}")


def generate_data(dim: int, args: argparse.Namespace) -> Path:
    data = args.out / "data" / f"particle_{dim}d"
    if not (data / "meta.json").exists():
        run_logged("ibc-data", ["generate", "--task", f"particle_{dim}d", "--episodes", str(args.episodes),
                                "--out", str(data), "--seed", str(args.data_seed), "--workers", str(args.data_workers)],
                   args.out / "logs" / f"data_{dim}d.log")
    return data


def trained_steps(policy: Path) -> int:
    """The step a policy file was exported at (below --steps when --max-train-seconds stopped it)."""
    from ibc_core.checkpoint import read_checkpoint   # torch: imported only when a cell ends
    return int(read_checkpoint(policy)["step"])


def run_cell(cell: Cell, data: Path, args: argparse.Namespace) -> dict:
    run_dir = args.out / "runs" / cell.name
    summary = args.out / "eval" / f"{cell.name}.json"
    log = args.out / "logs" / f"{cell.name}.log"
    if not summary.exists():
        train_seconds = None
        if not (run_dir / "policy.pt").exists():   # ibc-train writes it when training ends
            started = time.monotonic()
            network = PAPER_RECIPES.get(cell.method, []) if args.paper_network else SMALL_NETWORK
            overrides = network + METHODS[cell.method]
            limit = [f"run.max_seconds={args.max_train_seconds:g}"] if args.max_train_seconds else []
            run_logged("ibc-train", ["train_particle", f"data.path={data}", f"run.out_dir={run_dir}",
                                     f"optim.steps={args.steps}", "run.threads=1", f"run.device={args.device}",
                                     *limit, *overrides, *args.words], log)
            train_seconds = round(time.monotonic() - started, 1)
        run_logged("ibc-eval", ["--checkpoint", str(run_dir / "policy.pt"), "--task", cell.task,
                                "--episodes", str(args.eval_episodes), "--device", args.device, "--threads", "1",
                                "--batch", str(args.eval_batch), "--json", str(summary)], log)
        result = json.loads(summary.read_text())
        result["train_seconds"] = train_seconds
        result["train_steps"] = trained_steps(run_dir / "policy.pt")
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
    plot([("", results)], args.out / "success_vs_dim.png")


def plot(series: list[tuple[str, list[dict]]], path: Path) -> None:
    """Success rate (95 % Wilson interval) vs N, one line per method of each (label, results)
    series; later series are drawn dashed with square markers (e.g. another machine's cells)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    several = len(series) > 1
    figure, axes = plt.subplots(figsize=(11, 4.5) if several else (6, 4))
    colours = {method: f"C{index}" for index, method in enumerate(METHODS)}
    dims = sorted({r["dim"] for _, results in series for r in results})
    for index, (label, results) in enumerate(series):
        for method in [m for m in METHODS if any(r["method"] == m for r in results)]:
            rows = sorted((r for r in results if r["method"] == method), key=lambda r: r["dim"])
            rates = [r["success_rate"] for r in rows]
            # max(0, .): the interval's ends can sit a rounding error inside the rate
            low = [max(0.0, r["success_rate"] - r["wilson95"][0]) for r in rows]
            high = [max(0.0, r["wilson95"][1] - r["success_rate"]) for r in rows]
            axes.errorbar([r["dim"] for r in rows], rates, yerr=[low, high], capsize=3, color=colours[method],
                          marker="os^D"[index % 4], linestyle=["-", "--", ":", "-."][index % 4],
                          label=f"{LABELS[method]}, {label}" if label else LABELS[method])
    axes.set_xscale("log", base=2)
    axes.set_xticks(dims, [str(d) for d in dims])
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel("particle dimension N")
    axes.set_ylabel("success rate (95% Wilson)")
    axes.set_title("N-D particle (paper Fig. 6)")
    if several:   # beside the axes: the lines would hide under it
        axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
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
    parser.add_argument("--data-workers", type=int, default=1, help="ibc-data processes per dimension")
    parser.add_argument("--device", default="cpu", help="training and evaluation device: cpu, cuda, cuda:N")
    parser.add_argument("--max-train-seconds", type=float, default=0.0,
                        help="stop each training after this long (run.max_seconds; 0: run all --steps); "
                             "the step reached is reported")
    parser.add_argument("--eval-batch", type=int, default=1,
                        help="episodes evaluated in lock-step, one policy call per step (ibc-eval --batch)")
    parser.add_argument("--paper-network", action="store_true",
                        help="keep train_particle.yaml's 128x16 network and appendix D.3's recipe "
                             "(hours per cell on a CPU)")
    add_override_words(parser, "extra ibc-train overrides for every cell, e.g. model.mlp.depth=2",
                       old={"--set": ""})
    args = parse_command_line(parser, argv)
    try:
        parse_overrides(args.words, TRAINING)   # a bad word stops the sweep before any cell runs
    except ValueError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    bad = [d for d in args.dims if d < 1]
    if bad:
        parser.error(f"--dims must be >= 1, got {bad}")
    for name in ("jobs", "data_workers", "eval_batch", "steps", "episodes", "eval_episodes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if not args.max_train_seconds >= 0:
        parser.error("--max-train-seconds must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for folder in ("data", "runs", "eval", "logs"):
        (args.out / folder).mkdir(parents=True, exist_ok=True)
    data = {dim: generate_data(dim, args) for dim in args.dims}
    # --methods order first: with fewer --jobs than cells, the first methods start first.
    cells = [Cell(dim, method) for method in args.methods for dim in args.dims]
    results, failures = [], []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_cell, cell, data[cell.dim], args): cell for cell in cells}
        for future in as_completed(futures):
            try:
                results.append(future.result())
            except RuntimeError as exc:
                failures.append(f"{futures[future].name}: {exc}")
                print(f"FAILED {futures[future].name}: {exc}", flush=True)
                continue
            results.sort(key=lambda r: (r["dim"], list(METHODS).index(r["method"])))
            write_report(results, args)
    if results:
        print((args.out / "results.md").read_text(), end="")
    if failures:
        print(f"{len(failures)} of {len(cells)} cells failed:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
