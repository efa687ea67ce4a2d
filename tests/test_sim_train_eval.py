"""Smoke test of the whole offline loop: ibc-data -> ibc-train -> ibc-eval on a checkpoint
(tiny: it checks the pieces fit together, not that the policy is any good)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from ibc_cli import data, evaluate


def test_generate_train_and_evaluate_a_checkpoint(tmp_path, capsys):
    dataset, run = tmp_path / "data", tmp_path / "run"
    assert data.main(["generate", "--task", "push_states", "--episodes", "3", "--out", str(dataset)]) == 0
    subprocess.run([sys.executable, "-m", "ibc_cli.train", "train_push_states", f"data.path={dataset}",
                    f"run.out_dir={run}", "optim.steps=5", "optim.batch_size=16", "ebm.counter_examples=16",
                    "ebm.dfo.samples=64", "run.checkpoint_every=5", "run.log_every=5"],
                   check=True, capture_output=True, timeout=300)
    out, parallel = tmp_path / "eval.json", tmp_path / "eval_2_workers.json"
    common = ["--checkpoint", str(run / "policy.pt"), "--task", "push_states", "--episodes", "3",
              "task.max_steps=5", "--device", "cpu"]
    threads_before = torch.get_num_threads()
    assert evaluate.main([*common, "--json", str(out), "--threads", "2"]) == 0
    assert torch.get_num_threads() == threads_before   # an in-process caller keeps its setting
    summary = json.loads(out.read_text())
    assert summary["policy"].endswith("policy.pt") and summary["episodes"] == 3
    assert all(episode["steps"] == 5 for episode in summary["per_episode"])   # ran the policy to the horizon
    # Inference noise is reseeded per episode: 2 worker processes (one thread each) give exactly
    # the same episodes as one process with 2 threads.
    assert evaluate.main([*common, "--json", str(parallel), "--workers", "2"]) == 0
    assert json.loads(parallel.read_text())["per_episode"] == summary["per_episode"]

    # A checkpoint of another task (push_pixels also offers the state it observes) is refused,
    # naming both tasks and the override; with the override it runs.
    other_task = ["--checkpoint", str(run / "policy.pt"), "--task", "push_pixels", "--episodes", "1",
                  "task.max_steps=2", "--device", "cpu"]
    capsys.readouterr()
    assert evaluate.main(other_task) == 2
    assert "trained for task 'push_states', not 'push_pixels' (--any-task evaluates it anyway)" \
        in capsys.readouterr().err
    assert evaluate.main([*other_task, "--any-task"]) == 0


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert evaluate.main(["--checkpoint", str(bad), "--task", "push_states", "--episodes", "1"]) == 2
    assert "cannot load checkpoint" in capsys.readouterr().err
    # With worker processes too: the error is reported, not lost in a pool that retries forever.
    assert evaluate.main(["--checkpoint", str(bad), "--task", "push_states", "--episodes", "2", "--workers", "2"]) == 2
    assert "cannot load checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--threads", "-1"], "--threads must be >= 0"),
    (["--threads", "2", "--workers", "2"], "--threads is for a single worker"),
    (["--batch", "0"], "--batch must be >= 1"),
    (["--batch", "4"], "--batch runs a checkpoint in this process: not with --oracle"),
])
def test_bad_thread_settings_are_rejected(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["--oracle", "--task", "push_states", *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_lockstep_batches_evaluate_the_same_episodes(tmp_path):
    """ibc-eval --batch N (the GPU path): the same seeds and success rule as one episode at a
    time; an explicit policy gives the same episodes, an EBM (Langevin) valid ones."""
    dataset = tmp_path / "data"
    assert data.main(["generate", "--task", "particle_2d", "--episodes", "6", "--out", str(dataset)]) == 0
    runs = {}
    for kind, extra in {"mse": ["model.kind=mse"],
                        "langevin": ["ebm.counter_examples=8", "ebm.langevin.iterations=3",
                                     "ebm.langevin.inference_samples=16"]}.items():
        runs[kind] = tmp_path / kind
        subprocess.run([sys.executable, "-m", "ibc_cli.train", "train_particle", f"data.path={dataset}",
                        f"run.out_dir={runs[kind]}", "optim.steps=30", "model.mlp.width=16", "model.mlp.depth=2",
                        "run.checkpoint_every=30", "run.log_every=30", *extra],
                       check=True, capture_output=True, timeout=300)

    def episodes(kind: str, batch: int) -> dict:
        out = tmp_path / f"{kind}_{batch}.json"
        assert evaluate.main(["--checkpoint", str(runs[kind] / "policy.pt"), "--task", "particle_2d",
                              "--episodes", "5", "--batch", str(batch), "--device", "cpu", "--json", str(out)]) == 0
        return json.loads(out.read_text())

    one_by_one, batched = episodes("mse", 1), episodes("mse", 3)   # groups of 3 and 2
    assert batched["batch"] == 3 and batched["seeds"] == one_by_one["seeds"]
    # Same episodes; a batched matrix product may round differently in the last bits.
    for alone, together in zip(one_by_one["per_episode"], batched["per_episode"], strict=True):
        assert (together["seed"], together["success"], together["steps"]) == \
            (alone["seed"], alone["success"], alone["steps"])
        assert together["final_distance"] == pytest.approx(alone["final_distance"], rel=1e-5)
    langevin = episodes("langevin", 5)
    assert [e["seed"] for e in langevin["per_episode"]] == list(range(1_000_000, 1_000_005))
    assert all(1 <= e["steps"] <= 50 and e["final_distance"] >= 0 for e in langevin["per_episode"])
