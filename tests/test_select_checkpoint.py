"""scripts/select_checkpoint.py: evaluates every kept checkpoint of real (tiny) particle runs on
validation seeds, never on the reported ones, picks the best by its ranking, and resumes without
re-evaluating (but evaluates again for other episodes or inference settings); a run without
checkpoints is a clear error that writes nothing."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from ibc_core.checkpoint import read_checkpoint
from ibc_cli import data
from sim.tasks import VALIDATION_SEED_BASE

REPO = Path(__file__).resolve().parents[1]


def select(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "select_checkpoint.py"), *argv],
                          capture_output=True, text=True, cwd=REPO, timeout=600)


def train(dataset: Path, run: Path, seed: int) -> None:
    subprocess.run([sys.executable, "-m", "ibc_cli.train", "train_particle", f"data.path={dataset}",
                    f"run.out_dir={run}", f"run.seed={seed}", "optim.steps=20", "run.checkpoint_every=10",
                    "run.log_every=10", "model.mlp.width=16", "model.mlp.depth=1", "model.mlp.resnet=false",
                    "model.mlp.spectral_norm=false", "ebm.counter_examples=4", "ebm.langevin.iterations=2",
                    "ebm.langevin.inference_samples=16", "optim.batch_size=8", "run.threads=1"],
                   check=True, capture_output=True, timeout=300)


def test_selects_the_best_checkpoint_on_validation_seeds_and_resumes(tmp_path: Path) -> None:
    dataset = tmp_path / "data"
    assert data.main(["generate", "--task", "particle_1d", "--episodes", "6", "--out", str(dataset)]) == 0
    runs = [tmp_path / "run_a", tmp_path / "run_b"]
    for seed, run in enumerate(runs):
        train(dataset, run, seed)
    out = tmp_path / "select"
    argv = [*map(str, runs), "--task", "particle_1d", "--episodes", "3", "--out", str(out)]
    first = select(*argv)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    selection = json.loads((out / "selection.json").read_text())
    evaluations = selection["evaluations"]
    assert sorted((Path(e["run"]).name, e["step"]) for e in evaluations) == [
        ("run_a", 10), ("run_a", 20), ("run_b", 10), ("run_b", 20)]
    assert all(e["seeds"] == [VALIDATION_SEED_BASE, VALIDATION_SEED_BASE + 3] for e in evaluations)
    best = max(e["successes"] for e in evaluations)
    chosen = next(e for e in evaluations if e["checkpoint"] == selection["chosen"])
    assert chosen["successes"] == best
    assert chosen["mean_final_distance"] == min(e["mean_final_distance"] for e in evaluations
                                                if e["successes"] == best)
    assert f"chosen: {selection['chosen']}" in first.stdout
    assert "(chosen)" in (out / "selection.md").read_text()

    second = select(*argv, "--export", str(tmp_path / "chosen.pt"))
    assert second.returncode == 0, second.stderr[-2000:]
    assert "$ ibc-eval" not in second.stdout   # every summary reused
    assert json.loads((out / "selection.json").read_text()) == selection
    # More validation episodes: every checkpoint is evaluated again, none reuses a 3-episode summary.
    third = select(*argv[:-4], "--episodes", "4", "--out", str(out))
    assert third.returncode == 0, third.stderr[-2000:]
    assert third.stdout.count("$ ibc-eval") == 4
    assert all(e["episodes"] == 4 for e in json.loads((out / "selection.json").read_text())["evaluations"])
    # Other inference settings (as IRvS's 1/eta): evaluated again, and recorded in each summary.
    fourth = select(*argv[:-4], "--episodes", "4", "--out", str(out),
                    "policy.ebm.langevin.inference_samples=8")
    assert fourth.returncode == 0, fourth.stderr[-2000:]
    assert fourth.stdout.count("$ ibc-eval") == 4
    assert all(e["policy_overrides"] == ["ebm.langevin.inference_samples=8"]
               for e in json.loads((out / "selection.json").read_text())["evaluations"])
    exported, source = read_checkpoint(tmp_path / "chosen.pt"), read_checkpoint(selection["chosen"])
    assert "training_state" in source and "training_state" not in exported
    assert exported["step"] == chosen["step"]
    assert all(torch.equal(exported["weights"][k], v) for k, v in source["weights"].items())


def test_average_of_the_last_checkpoints_is_one_more_candidate(tmp_path: Path) -> None:
    dataset = tmp_path / "data"
    assert data.main(["generate", "--task", "particle_1d", "--episodes", "6", "--out", str(dataset)]) == 0
    run = tmp_path / "run_a"
    train(dataset, run, 0)
    out = tmp_path / "select"
    too_many = select(str(run), "--task", "particle_1d", "--episodes", "2", "--average-last", "3", "--out", str(out))
    assert too_many.returncode == 2 and "--average-last 3 needs 3 checkpoints, found 2" in too_many.stderr
    assert not out.exists()
    result = select(str(run), "--task", "particle_1d", "--episodes", "2", "--average-last", "2", "--out", str(out),
                    "--export", str(tmp_path / "chosen.pt"))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.count("$ ibc-eval") == 3
    evaluations = json.loads((out / "selection.json").read_text())["evaluations"]
    assert sorted(e["label"] for e in evaluations) == ["10", "20", "average of 10, 20"]
    averaged = read_checkpoint(out / "averages" / "run_a_avg10-20.pt")
    members = [read_checkpoint(run / "checkpoints" / f"step_000000{n}.pt")["weights"] for n in (10, 20)]
    for key, value in averaged["weights"].items():
        torch.testing.assert_close(value, (members[0][key] + members[1][key]) / 2, msg=key)
    assert "| run_a | average of 10, 20" in (out / "selection.md").read_text()
    only = select(str(run), "--task", "particle_1d", "--episodes", "2", "--average-last", "2", "--averages-only",
                  "--out", str(tmp_path / "select_averages"))
    assert only.returncode == 0 and only.stdout.count("$ ibc-eval") == 1, only.stderr[-2000:]
    evaluations = json.loads((tmp_path / "select_averages" / "selection.json").read_text())["evaluations"]
    assert [e["label"] for e in evaluations] == ["average of 10, 20"]
    unpaired = select(str(run), "--task", "particle_1d", "--averages-only", "--out", str(tmp_path / "unpaired"))
    assert unpaired.returncode == 2 and "--averages-only needs --average-last K" in unpaired.stderr


def test_runs_with_the_same_folder_name_never_share_an_evaluation(tmp_path: Path) -> None:
    dataset = tmp_path / "data"
    assert data.main(["generate", "--task", "particle_1d", "--episodes", "6", "--out", str(dataset)]) == 0
    runs = [tmp_path / "a" / "run", tmp_path / "b" / "run"]
    for seed, run in enumerate(runs):
        train(dataset, run, seed)
    out = tmp_path / "select"
    result = select(*map(str, runs), "--task", "particle_1d", "--episodes", "2", "--min-step", "20", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("$ ibc-eval") == 2
    evaluations = json.loads((out / "selection.json").read_text())["evaluations"]
    assert [e["policy"] for e in evaluations] == [e["checkpoint"] for e in evaluations]
    assert len({e["checkpoint"] for e in evaluations}) == 2


def test_a_run_without_checkpoints_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty_run").mkdir()
    result = select(str(tmp_path / "empty_run"), "--task", "particle_1d", "--out", str(tmp_path / "select"))
    assert result.returncode == 2 and "no checkpoints/step_*.pt" in result.stderr
    assert not (tmp_path / "select").exists()


def test_reported_seeds_cannot_be_used_for_selection(tmp_path: Path) -> None:
    result = select(str(tmp_path), "--task", "particle_1d", "--seed", "1000000", "--out", str(tmp_path / "select"))
    assert result.returncode == 2 and f"--seed must be >= {VALIDATION_SEED_BASE}" in result.stderr
