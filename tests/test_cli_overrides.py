"""Issue #24: one override spelling for the commands (ibc_cli/common.py), run as a user runs
them - the console scripts in subprocesses. KEY=VALUE words reach the configuration in each
command that has one; the old spellings (--set, --policy-set, policy_set:= for ibc-ros) are
refused naming the words to write; a malformed word or an unknown key is one `prog: error:`
line naming the word, exit status 2, and nothing is written."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ibc_core.checkpoint import read_checkpoint

TINY = ["optim.steps=2", "optim.batch_size=8", "model.mlp.width=16", "model.mlp.depth=2",
        "ebm.counter_examples=8", "ebm.langevin.iterations=2", "ebm.langevin.inference_samples=8",
        "run.threads=1", "run.checkpoint_every=2", "run.log_every=1", "run.device=cpu"]


def command(tool: str, *argv: str) -> subprocess.CompletedProcess:
    script = str(Path(sys.executable).with_name(tool))
    return subprocess.run([script, *argv], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def error_line(result: subprocess.CompletedProcess, prog: str) -> str:
    """The one `prog: error: ...` line the command ended with (exit status 2)."""
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def particle_policy(tmp_path_factory) -> Path:
    """A 2-step particle_2d policy, trained by ibc-train from ibc-data demos (both with words)."""
    root = tmp_path_factory.mktemp("cli")
    data, run = root / "data", root / "run"
    made = command("ibc-data", "generate", "--task", "particle_2d", "--episodes", "2", "--out", str(data))
    assert made.returncode == 0, made.stderr[-2000:]
    trained = command("ibc-train", "train_particle", f"data.path={data}", f"run.out_dir={run}", *TINY)
    assert trained.returncode == 0, trained.stderr[-2000:]
    return run / "policy.pt"


def test_ibc_data_words_reach_the_task_config(tmp_path):
    out = tmp_path / "demos"
    made = command("ibc-data", "generate", "--task", "particle_2d", "task.max_steps=7", "--episodes", "1",
                   "--out", str(out), "task.oracle_noise=0.5", "--keep-failed")   # words between options
    assert made.returncode == 0, made.stderr[-2000:]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["max_steps"] == 7 and meta["oracle_noise"] == 0.5


def test_ibc_train_words_reach_the_training_config(particle_policy):
    stored = read_checkpoint(particle_policy)["config"]
    assert stored["optim"]["steps"] == 2 and stored["model"]["mlp"]["width"] == 16
    assert stored["run"]["out_dir"] == str(particle_policy.parent)


def test_ibc_eval_words_reach_the_task_and_the_policy(particle_policy, tmp_path):
    summary_file = tmp_path / "eval.json"
    ran = command("ibc-eval", "--checkpoint", str(particle_policy), "--task", "particle_2d", "task.max_steps=2",
                  "--episodes", "1", "policy.ebm.langevin.inference_samples=4", "--device", "cpu",
                  "--json", str(summary_file))
    assert ran.returncode == 0, ran.stderr[-2000:]
    summary = json.loads(summary_file.read_text())
    assert summary["per_episode"][0]["steps"] == 2
    assert summary["task_overrides"] == ["max_steps=2"]
    assert summary["policy_overrides"] == ["ebm.langevin.inference_samples=4"]
    # A policy word's value goes to Policy.load, which type-checks it against the checkpoint's config.
    line = error_line(command("ibc-eval", "--checkpoint", str(particle_policy), "--task", "particle_2d",
                              "--episodes", "1", "policy.ebm.langevin.inference_samples=many"), "ibc-eval")
    assert "inference_samples" in line and "many" in line


def test_ibc_bench_words_reach_the_config(particle_policy):
    ran = command("ibc-bench", "inference", "--config", "particle", "--iterations", "1", "--warmup", "0",
                  "model.mlp.depth=2", "--threads", "1", "ebm.langevin.iterations=2")
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert json.loads(ran.stdout)["overrides"] == ["model.mlp.depth=2", "ebm.langevin.iterations=2"]
    line = error_line(command("ibc-bench", "inference", "--config", "particle", "model.kind=nonsense"), "ibc-bench")
    assert "model.kind" in line and "nonsense" in line
    # With --checkpoint the words change its inference settings (Policy.load).
    line = error_line(command("ibc-bench", "inference", "--checkpoint", str(particle_policy),
                              "ebm.langevin.inference_samples=many"), "ibc-bench")
    assert "inference_samples" in line and "many" in line


def test_ibc_ros_policy_words_become_the_policy_node_parameter():
    printed = command("ibc-ros", "launch", "real_push", "sim:=true", "policy.irvs.inverse_eta=2", "--print",
                      "policy.ebm.dfo.samples=64")
    assert printed.returncode == 0, printed.stderr[-2000:]
    policy_line = next(line for line in printed.stdout.splitlines() if "__node:=policy" in line)
    assert "policy_set:=irvs.inverse_eta=2 ebm.dfo.samples=64" in policy_line
    listed = command("ibc-ros", "args", "real_push")
    assert "policy.KEY=VALUE" in listed.stdout and "policy_set:=" not in listed.stdout.replace(
        'ros2 launch: policy_set:=', '')


@pytest.mark.parametrize("tool, argv, new_words", [
    ("ibc-data", ["generate", "--task", "particle_2d", "--episodes", "1", "--set", "max_steps=5"], "task.max_steps=5"),
    ("ibc-eval", ["--oracle", "--task", "particle_2d", "--set", "max_steps=5"], "task.max_steps=5"),
    ("ibc-eval", ["--oracle", "--task", "particle_2d", "--policy-set=irvs.inverse_eta=2"], "policy.irvs.inverse_eta=2"),
    ("ibc-train", ["train_particle", "--set", "optim.steps=5"], "optim.steps=5"),
    ("ibc-bench", ["inference", "--set", "ebm.dfo.samples=16"], "ebm.dfo.samples=16"),
    ("ibc-ros", ["launch", "real_push", "sim:=true", "policy_set:=irvs.inverse_eta=2 ebm.dfo.samples=64", "--print"],
     "policy.irvs.inverse_eta=2 policy.ebm.dfo.samples=64"),
])
def test_old_spellings_are_refused_naming_the_new_words(tool, argv, new_words, tmp_path):
    line = error_line(command(tool, *argv, *(["--out", str(tmp_path / "out")] if tool == "ibc-data" else [])),
                      tool if tool != "ibc-data" else "ibc-data generate")
    assert new_words in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("tool, argv, word, says", [
    ("ibc-data", ["generate", "--task", "particle_2d", "--episodes", "1"], "foo", "is not an override"),
    ("ibc-data", ["generate", "--task", "particle_2d", "--episodes", "1"], "max_steps=5",
     "a key starts with the configuration it changes: task. (here: task.max_steps=5)"),
    ("ibc-data", ["generate", "--task", "particle_2d", "--episodes", "1"], "task.max_step=5", "no key 'max_step'"),
    ("ibc-eval", ["--oracle", "--task", "particle_2d", "--episodes", "1"], "foo", "is not an override"),
    ("ibc-eval", ["--oracle", "--task", "particle_2d", "--episodes", "1"], "policy.ebm.dfo.sample=5",
     "no key 'sample' in ebm.dfo"),
    ("ibc-train", ["train_particle"], "optim.steps", "is not an override"),
    ("ibc-train", ["train_particle"], "optim.step=5", "no key 'step' in optim"),
    ("ibc-bench", ["inference", "--config", "particle"], "model.mlp.widht=3", "no key 'widht' in model.mlp"),
    ("ibc-ros", ["launch", "real_push", "sim:=true", "--print"], "foo", "is not an override"),
    ("ibc-ros", ["launch", "real_push", "sim:=true", "--print"], "policy.irvs.eta=2", "no key 'eta' in irvs"),
])
def test_a_bad_word_is_one_error_line_naming_it(tool, argv, word, says, tmp_path):
    out = tmp_path / "out"
    extra = {"ibc-data": ["--out", str(out)], "ibc-eval": ["--json", str(out)],
             "ibc-train": [f"run.out_dir={out}"]}.get(tool, [])
    line = error_line(command(tool, *argv, *extra, word), tool)
    assert repr(word) in line and says in line
    assert not out.exists()   # nothing written
