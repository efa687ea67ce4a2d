"""ibc-train as a user runs it (real console script in a subprocess): YAML + overrides,
checkpoints, TensorBoard scalars, clear errors; and 1-process vs 2-process (torchrun, gloo)
data-parallel training producing the same model."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ibc_core.checkpoint import CheckpointError, read_checkpoint
from ibc_cli.train import main as train_main
from ibc_core.data.synthetic import write_function_dataset
from ibc_core.policy import Policy

CONFIG = {"data": {"path": "", "history_length": 2},
          "model": {"kind": "ebm", "mlp": {"width": 32, "depth": 3}},
          "ebm": {"counter_examples": 32, "dfo": {"samples": 256}},
          "optim": {"batch_size": 32, "steps": 12},
          "run": {"out_dir": "", "threads": 1, "checkpoint_every": 5, "log_every": 2}}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    states = rng.normal(size=(200, 4)).astype(np.float32)
    actions = np.tanh(states[:, :2]).astype(np.float32) * 0.05
    return write_function_dataset(tmp_path_factory.mktemp("data"), states, actions, [-0.1, -0.1], [0.1, 0.1],
                                  steps_per_episode=40)


@pytest.fixture
def config_file(tmp_path: Path, dataset: Path) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "data": {**CONFIG["data"], "path": str(dataset)}}))
    return path


def run(argv: list[str], **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(argv, capture_output=True, text=True, timeout=240, env=environment)


def ibc_train() -> str:
    return str(Path(sys.executable).with_name("ibc-train"))


def test_ibc_train_cli_writes_policy_checkpoints_and_tensorboard(config_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run([ibc_train(), str(config_file), f"run.out_dir={out}", "optim.steps=10"])
    assert result.returncode == 0, result.stderr
    assert "policy written to" in result.stdout
    assert "steps_s" in result.stderr and "loss" in result.stderr  # tqdm progress bar postfix
    assert read_checkpoint(out / "policy.pt")["step"] == 10
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*.pt")) == ["step_00000005.pt",
                                                                              "step_00000010.pt"]
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    policy = Policy.load(out / "policy.pt", device="cpu")
    assert policy.act({"state": np.zeros(4, np.float32)}).shape == (2,)


def test_ibc_train_cli_errors_name_the_problem(config_file: Path, tmp_path: Path, capsys) -> None:
    # In-process calls of the console script's main(): same code, no interpreter start-up each.
    cases = [(["optim.lr=-1"], "optim: lr must be > 0"),
             (["model.mlp.widht=3"], "model.mlp.widht"),
             ([f"data.path={tmp_path / 'nope'}"], "is not a dataset"),
             ([f"run.out_dir={tmp_path / 'fresh'}", "--resume"], "no checkpoint")]
    for overrides, message in cases:
        assert train_main([str(config_file), *overrides]) == 2
        assert message in capsys.readouterr().err
    assert train_main([str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_gloo_processes_train_the_same_model_as_one(config_file: Path, tmp_path: Path) -> None:
    single, double = tmp_path / "single", tmp_path / "double"
    one = run([ibc_train(), str(config_file), f"run.out_dir={single}"])
    assert one.returncode == 0, one.stderr
    two = run([sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}",
               "-m", "ibc_cli.train", str(config_file), f"run.out_dir={double}"], GLOO_SOCKET_IFNAME="lo")
    assert two.returncode == 0, two.stderr
    a, b = read_checkpoint(single / "policy.pt"), read_checkpoint(double / "policy.pt")
    assert a["step"] == b["step"] == CONFIG["optim"]["steps"]
    start = read_checkpoint(single / "checkpoints" / "step_00000005.pt")["weights"]
    moved = max((a["weights"][k] - start[k]).abs().max().item() for k in start)
    assert moved > 1e-3, "the models must actually have trained between checkpoints"
    # Weights agree to float summation order (all-reduce of two half-batch means), except in
    # directions InfoNCE cannot see (e.g. the bias of a unit active for every sample shifts all
    # energies by a constant): their gradient is ~0 and Adam's normalisation turns rounding
    # noise into lr-sized steps. So compare elementwise, and compare the energy functions up to
    # a per-observation constant.
    flat = lambda w: torch.cat([v.flatten() for v in w.values()])
    differing = ((flat(a["weights"]) - flat(b["weights"])).abs() > 1e-5).float().mean().item()
    assert differing < 0.01, f"{differing:.2%} of the weights differ"
    one, two = Policy.load(single / "policy.pt", "cpu"), Policy.load(double / "policy.pt", "cpu")
    rng = np.random.default_rng(1)
    actions = rng.uniform(one.action_low, one.action_high, (512, 2)).astype(np.float32)
    for _ in range(5):
        obs = {"state": rng.normal(size=4).astype(np.float32)}
        e1, e2 = one.energies(obs, actions), two.energies(obs, actions)
        np.testing.assert_allclose(e1 - e1.mean(), e2 - e2.mean(), atol=1e-4 * max(1.0, np.ptp(e1)))
        one.reset(), two.reset()
        np.testing.assert_allclose(one.act(obs), two.act(obs), atol=1e-6)


@pytest.mark.parametrize("what, config", [("inference", "paper_real"), ("inference", "push_states"),
                                          ("train", "push_pixels")])
def test_ibc_bench_reports_latency_percentiles(what: str, config: str, capsys) -> None:
    from ibc_cli.bench import main as bench_main
    assert bench_main([what, "--config", config, "--iterations", "3", "--warmup", "1", "--threads", "1"]) == 0
    report = yaml.safe_load(capsys.readouterr().out)
    assert report["config"] == config and report["device"] == "cpu"
    assert 0 < report["p50_ms"] <= report["p99_ms"] <= report["max_ms"]
    assert bench_main(["inference", "--config", "no_such_config"]) == 2


def test_ctrl_c_saves_and_resume_takes_the_runs_own_settings(config_file: Path, tmp_path: Path) -> None:
    """Ctrl-C ends training after a whole step, saved, with the command that continues; that
    command (no data.path, no steps) continues with the run's stored configuration."""
    out = tmp_path / "run"
    process = subprocess.Popen([ibc_train(), str(config_file), f"run.out_dir={out}", "optim.steps=100000",
                                "run.checkpoint_every=5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 180   # a bound on waiting, not a timing assertion
    while not (out / "checkpoints" / "last.pt").exists() and time.monotonic() < deadline:   # step 5 saved
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    saved = read_checkpoint(out / "checkpoints" / "last.pt")["step"]
    assert saved >= 5 and f"interrupted after step {saved}" in stderr
    assert f"ibc-train {config_file} run.out_dir={out} --resume" in stderr

    # The printed command as given, plus one explicit change; data.path and the rest are the run's.
    resumed = run([ibc_train(), str(config_file), f"run.out_dir={out}", "--resume", f"optim.steps={saved + 3}"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming {out} at step {saved} with its stored configuration, changed by: optim.steps={saved + 3}" \
        in resumed.stdout
    assert read_checkpoint(out / "policy.pt")["step"] == saved + 3
    stored = read_checkpoint(out / "policy.pt")["config"]
    assert stored["run"]["checkpoint_every"] == 5 and stored["optim"]["steps"] == saved + 3


def test_a_run_folder_stands_for_its_policy(config_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert train_main([str(config_file), f"run.out_dir={out}", "optim.steps=2"]) == 0
    assert Policy.load(out, "cpu").act({"state": np.zeros(4, np.float32)}).shape == (2,)
    with pytest.raises(CheckpointError, match="is a folder without policy.pt"):
        Policy.load(tmp_path, "cpu")
