"""Where an energy-based policy fails: the learned energy, or its minimisation?

On demonstration states (every --every-th step of the first --episodes episodes of a dataset),
with the observation history the policy would have had, this compares
  - the action the policy chooses (Policy.act_batch: its own sampler and settings),
  - the demonstrator's action,
  - the lowest-energy action of a much larger search (--samples uniform actions),
by distance and by the model's own energy. Where the choice lies far from the demonstration:
  - E(choice) <= E(demo): the model ranks the wrong action at least as low -> the learned energy
    is wrong there (a better sampler would not help);
  - E(demo) < E(choice): a lower-energy action existed that the sampler missed -> minimisation.

    ./run.sh python scripts/energy_diagnosis.py --checkpoint runs/particle_2d/policy.pt \\
        --dataset data/particle_2d --episodes 10 --every 5 --json out/diagnosis_2d.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ibc_core.data.episodes import iter_episodes
from ibc_core.policy import CheckpointError, Policy


def demonstration_states(dataset: Path, episodes: int, every: int, history_length: int, keys: tuple[str, ...]):
    """(observation history, demonstrated action) pairs, the history oldest first."""
    for index, episode in enumerate(iter_episodes(dataset)):
        if index == episodes:
            return
        for t in range(0, len(episode.actions), every):
            first = max(0, t - history_length + 1)
            history = [{key: episode.observations[key][i] for key in keys} for i in range(first, t + 1)]
            yield history, np.asarray(episode.actions[t], np.float32)


def diagnose(policy: Policy, dataset: Path, episodes: int, every: int, samples: int, far: float,
             seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    low, high = policy.action_low, policy.action_high
    rows = []
    for history, demo in demonstration_states(dataset, episodes, every, policy.history_length,
                                              policy.observation_keys):
        policy.reset()
        chosen = policy.act_batch([history])[0]
        uniform = rng.uniform(low, high, size=(samples, len(low))).astype(np.float32)
        energies = policy.energies(history, np.concatenate([[chosen, demo], uniform]))
        best = int(np.argmin(energies[2:]))
        rows.append({"gap": float(np.linalg.norm(chosen - demo)), "energy_chosen": float(energies[0]),
                     "energy_demo": float(energies[1]), "energy_search": float(energies[2 + best]),
                     "search_gap": float(np.linalg.norm(uniform[best] - demo))})
    gaps = np.array([r["gap"] for r in rows])
    far_rows = [r for r in rows if r["gap"] > far]
    spread = float(np.median([abs(r["energy_demo"] - r["energy_search"]) for r in rows]) or 1.0)
    return {
        "states": len(rows), "far_threshold": far, "median_gap": float(np.median(gaps)),
        "p90_gap": float(np.percentile(gaps, 90)), "far_fraction": len(far_rows) / len(rows),
        # Among the far choices: who is to blame.
        "far_energy_prefers_choice": sum(r["energy_chosen"] <= r["energy_demo"] for r in far_rows),
        "far_sampler_missed_lower_demo": sum(r["energy_demo"] < r["energy_chosen"] for r in far_rows),
        # Over all states: does a much larger search find lower energies than the sampler?
        "search_below_choice_fraction": float(np.mean([r["energy_search"] < r["energy_chosen"] for r in rows])),
        "search_best_far_from_demo_fraction": float(np.mean([r["search_gap"] > far for r in rows])),
        "median_abs_energy_demo_minus_search": spread, "per_state": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True, help="demonstrations (ibc-data) of the same task")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--every", type=int, default=5, help="every n-th step of each episode")
    parser.add_argument("--samples", type=int, default=16384, help="uniform actions of the larger search")
    parser.add_argument("--far", type=float, default=0.1,
                        help="a choice further than this from the demonstration (env units) counts as wrong")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    for name in ("episodes", "every", "samples"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    try:
        policy = Policy.load(args.checkpoint, args.device)
        report = diagnose(policy, args.dataset, args.episodes, args.every, args.samples, args.far)
    except (CheckpointError, OSError, ValueError) as exc:
        print(f"energy_diagnosis: error: {exc}", file=sys.stderr)
        return 2
    report = {"checkpoint": str(args.checkpoint), "dataset": str(args.dataset), **report}
    summary = {k: v for k, v in report.items() if k != "per_state"}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
