"""Choose a training run's checkpoint by success on validation seeds.

IBC's closed-loop success swings between checkpoints while the training loss keeps falling
(Diffusion Policy's reproduction saw the same), so the last checkpoint is not always the best.
This evaluates every checkpoints/step_*.pt of the given runs with ibc-eval on validation seeds
from sim.tasks.VALIDATION_SEED_BASE - disjoint from the training seeds (below
sim.tasks.EVAL_SEED_BASE) and from the seeds results are reported on (EVAL_SEED_BASE up), so the
choice never sees a reported episode - and ranks them by successes, then mean final distance,
then the later step. --average-last K adds, per run, the
uniform weight average of its last K kept checkpoints (from --min-step) as one more candidate,
written to OUT/averages/ - on our pushing runs such an average beat each of its members;
--averages-only evaluates only those (for pixels, whose episodes render and encode images).

    ./run.sh python scripts/select_checkpoint.py runs/push_states_2k_s0 runs/push_states_2k_s1 \\
        --task push_states --episodes 30 --min-step 10000 --workers 2 --out runs/select_push_states \\
        --average-last 3
    ./run.sh python scripts/select_checkpoint.py runs/irvs_l --task push_states --out runs/select_irvs \\
        policy.irvs.inverse_eta=1                     # ibc-eval's override words, passed on

Writes OUT/evals/<candidate>.json (one ibc-eval summary per candidate; one of the same
checkpoint, task, seeds, task and policy overrides is reused, so an interrupted selection
resumes), OUT/selection.json and OUT/selection.md, and prints the chosen checkpoint; --export
PATH also writes it as a policy file (weights and preprocessing, without the optimizer state).
Report its success with a plain ibc-eval on the default seeds.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ibc_core.checkpoint import CheckpointError, average_checkpoints, load_checkpoint, save_checkpoint
from ibc_cli import evaluate
from ibc_cli.common import ROLLOUT, parse_overrides, refuse_old_spellings
from sim.tasks import VALIDATION_SEED_BASE

STEP_FILE = re.compile(r"step_(\d+)\.pt")


@dataclass(frozen=True)
class Candidate:
    run: Path
    step: int
    checkpoint: Path
    averaged_steps: tuple[int, ...] = ()     # set for a weight average of these steps' checkpoints

    @property
    def name(self) -> str:
        if self.averaged_steps:
            return average_name(self.run, self.averaged_steps)
        return f"{self.run.name}_step{self.step}"

    @property
    def label(self) -> str:
        """The report's step column."""
        if self.averaged_steps:
            return f"average of {', '.join(str(step) for step in self.averaged_steps)}"
        return str(self.step)


def candidates(runs: list[Path], min_step: int) -> list[Candidate]:
    """Every kept step checkpoint at or after min_step; a run with none is an error."""
    found = []
    for run in runs:
        steps = [Candidate(run, int(match.group(1)), path)
                 for path in sorted((run / "checkpoints").glob("step_*.pt"))
                 if (match := STEP_FILE.fullmatch(path.name)) and int(match.group(1)) >= min_step]
        if not steps:
            raise ValueError(f"{run}: no checkpoints/step_*.pt at step >= {min_step}")
        found += steps
    return found


def average_name(run: Path, steps: tuple[int, ...]) -> str:
    """File stem of a run's weight average (also its evals/ summary's)."""
    return f"{run.name}_avg{steps[0]}-{steps[-1]}"


def averaged_candidates(found: list[Candidate], last: int, out: Path) -> list[Candidate]:
    """Per run, the weight average of its last ``last`` candidates, written to OUT/averages/
    once all of them could be built (a run that cannot be averaged writes nothing)."""
    averages = []
    for run in dict.fromkeys(candidate.run for candidate in found):
        members = sorted((c for c in found if c.run == run), key=lambda c: c.step)[-last:]
        if len(members) < last:
            raise ValueError(f"{run}: --average-last {last} needs {last} checkpoints, found {len(members)}")
        steps = tuple(member.step for member in members)
        candidate = Candidate(run, steps[-1], out / "averages" / f"{average_name(run, steps)}.pt", steps)
        averages.append((candidate, average_checkpoints([member.checkpoint for member in members])))
    for candidate, (network, artifacts, step) in averages:
        save_checkpoint(candidate.checkpoint, network, artifacts, step)
    return [candidate for candidate, _ in averages]


def stored_evaluation(summary: Path, checkpoint: Path, args: argparse.Namespace) -> dict | None:
    """The stored summary if it evaluated this checkpoint on this task, these seeds and these
    overrides and policy settings (two runs with the same folder name share a file name), else None."""
    if not summary.exists():
        return None
    stored = json.loads(summary.read_text())
    key = ("policy", "task", "seeds", "task_overrides", "policy_overrides")
    same = tuple(stored.get(field) for field in key) == (
        str(checkpoint), args.task, [args.seed, args.seed + args.episodes], args.overrides["task"],
        args.overrides["policy"])
    return stored if same else None


def evaluate_candidate(candidate: Candidate, args: argparse.Namespace) -> dict:
    summary = args.out / "evals" / f"{candidate.name}.json"
    result = stored_evaluation(summary, candidate.checkpoint, args)
    if result is None:
        print(f"$ ibc-eval --checkpoint {candidate.checkpoint} --seed {args.seed}", flush=True)
        code = evaluate.main(["--checkpoint", str(candidate.checkpoint), "--task", args.task,
                              "--episodes", str(args.episodes), "--seed", str(args.seed),
                              "--workers", str(args.workers), "--device", "cpu", "--json", str(summary),
                              *args.words])
        if code != 0:
            raise RuntimeError(f"ibc-eval failed on {candidate.checkpoint} (exit {code})")
        result = json.loads(summary.read_text())
    return {"run": str(candidate.run), "step": candidate.step, "label": candidate.label,
            "checkpoint": str(candidate.checkpoint), **result}


def rank_key(result: dict) -> tuple:
    return (-result["successes"], result["mean_final_distance"], -result["step"])


def write_report(results: list[dict], out: Path) -> dict:
    best = min(results, key=rank_key)
    (out / "selection.json").write_text(json.dumps({"chosen": best["checkpoint"], "evaluations": results}, indent=2))
    lines = ["| run | step | validation success | 95% Wilson | mean final distance (m) |", "|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r["run"], r["step"], r["label"])):
        mark = " **(chosen)**" if r is best else ""
        low, high = r["wilson95"]
        lines.append(f"| {Path(r['run']).name} | {r['label']}{mark} | {r['successes']}/{r['episodes']} | "
                     f"[{low:.2f}, {high:.2f}] | {r['mean_final_distance']:.3f} |")
    (out / "selection.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"chosen: {best['checkpoint']} ({best['successes']}/{best['episodes']} on seeds {best['seeds']})")
    return best


def export_policy(checkpoint: Path, path: Path) -> None:
    """The checkpoint as ibc-train's policy.pt would be: no optimizer/scheduler state."""
    network, artifacts, payload = load_checkpoint(checkpoint)
    save_checkpoint(path, network, artifacts, int(payload["step"]))
    print(f"exported {checkpoint} -> {path}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("runs", nargs="+", metavar="RUN | KEY=VALUE",
                        help="ibc-train run folders (run.out_dir), and ibc-eval's override words: "
                             "task.KEY=VALUE, policy.KEY=VALUE (e.g. policy.irvs.inverse_eta=3)")
    parser.add_argument("--task", required=True, help="the ibc-eval task")
    parser.add_argument("--episodes", type=int, default=30, help="validation episodes per checkpoint")
    parser.add_argument("--seed", type=int, default=VALIDATION_SEED_BASE, help="first validation seed")
    parser.add_argument("--min-step", type=int, default=0, help="skip earlier checkpoints")
    parser.add_argument("--workers", type=int, default=1, help="ibc-eval worker processes")
    refuse_old_spellings(parser, {"--set": "task.", "--policy-set": "policy."})
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--export", type=Path, help="write the chosen checkpoint here as a policy file")
    parser.add_argument("--average-last", type=int, default=0, metavar="K",
                        help="also evaluate, per run, the weight average of its last K checkpoints (K >= 2)")
    parser.add_argument("--averages-only", action="store_true",
                        help="with --average-last: evaluate only the averages, not the step checkpoints "
                             "(when validation episodes are expensive, as with pixels)")
    args = parser.parse_intermixed_args(argv)
    # A word KEY=VALUE (no / before its =) is an ibc-eval override, any other a run folder.
    is_word = lambda text: "=" in text and "/" not in text.partition("=")[0]  # noqa: E731
    args.words = [text for text in args.runs if is_word(text)]
    args.runs = [Path(text) for text in args.runs if not is_word(text)]
    try:
        args.overrides = parse_overrides(args.words, ROLLOUT)
    except ValueError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    if not args.runs:
        parser.error("no run folder given")
    if args.average_last == 1 or args.average_last < 0:
        parser.error("--average-last must be 0 (off) or >= 2")
    if args.averages_only and not args.average_last:
        parser.error("--averages-only needs --average-last K")
    if args.seed < VALIDATION_SEED_BASE:
        parser.error(f"--seed must be >= {VALIDATION_SEED_BASE}: lower seeds are training or reported seeds")
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        found = candidates(args.runs, args.min_step)
        if args.average_last:
            averages = averaged_candidates(found, args.average_last, args.out)
            found = averages if args.averages_only else found + averages
    except (ValueError, CheckpointError) as exc:
        print(f"select_checkpoint: error: {exc}", file=sys.stderr)
        return 2
    (args.out / "evals").mkdir(parents=True, exist_ok=True)
    best = write_report([evaluate_candidate(c, args) for c in found], args.out)
    if args.export is not None:
        export_policy(Path(best["checkpoint"]), args.export)
    return 0


if __name__ == "__main__":
    sys.exit(main())
