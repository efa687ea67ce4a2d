"""Checkpoint round trip and failure modes, the Policy API contract (COMMON.md #1), resume, averaging."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from ibc_core.checkpoint import (CheckpointError, average_checkpoints, load_checkpoint, read_checkpoint,
                                 save_checkpoint)
from ibc_core.config_io import ConfigError, load_config
from ibc_core.data.preprocess import ImageSpec, preprocess_image
from ibc_core.data.synthetic import write_function_dataset
from ibc_core.policy import Policy
from ibc_core.config import TrainConfig
from ibc_core.training.trainer import Trainer

SMALL = {"model": {"mlp": {"width": 32, "depth": 2}, "encoder": {"channels": [8, 16]}},
         "ebm": {"counter_examples": 16, "dfo": {"samples": 256}},
         "optim": {"batch_size": 16, "steps": 6}}


@pytest.fixture(scope="module")
def pixel_data(tmp_path_factory) -> Path:
    """States + 24x32 images, 2-D actions: the shape of the pushing datasets, small."""
    rng = np.random.default_rng(0)
    n = 120
    states = rng.normal(size=(n, 10)).astype(np.float32)
    images = rng.integers(0, 256, (n, 24, 32, 3), dtype=np.uint8)
    actions = rng.uniform(-0.03, 0.03, (n, 2)).astype(np.float32)
    return write_function_dataset(tmp_path_factory.mktemp("pix"), states, actions, [-0.1, -0.1], [0.1, 0.1],
                                  images=images, steps_per_episode=30)


def train(data: Path, out: Path, overrides: tuple[str, ...] = (), resume: bool = False) -> Path:
    # Deep copy: config_io.load_config applies overrides to nested mappings in place.
    raw = {**copy.deepcopy(SMALL), "data": {"path": str(data)}, "run": {"out_dir": str(out), "progress": False}}
    return Trainer(load_config(TrainConfig, raw, overrides), resume=resume).run()


@pytest.fixture(scope="module")
def pixel_policy_path(pixel_data: Path, tmp_path_factory) -> Path:
    return train(pixel_data, tmp_path_factory.mktemp("run"))


def frames(count: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (360, 640, 3), dtype=np.uint8) for _ in range(count)]


def rollout(policy: Policy, images: list[np.ndarray]) -> np.ndarray:
    policy.reset()
    return np.stack([policy.act({"state": np.full(10, i, np.float32), "rgb": frame})
                     for i, frame in enumerate(images)])


def test_policy_contract(pixel_policy_path: Path) -> None:
    policy = Policy.load(pixel_policy_path, device="auto")
    assert policy.observation_keys == ("state", "rgb")
    assert policy.image_spec == ImageSpec(24, 32, (0.0, 0.0, 1.0, 1.0))
    assert policy.history_length == 2
    assert policy.action_low.shape == (2,) and np.all(policy.action_low >= -0.1)
    assert np.all(policy.action_high <= 0.1) and np.all(policy.action_low < policy.action_high)
    actions = rollout(policy, frames(3))
    assert actions.dtype == np.float32 and actions.shape == (3, 2)
    assert np.all(actions >= policy.action_low - 1e-6) and np.all(actions <= policy.action_high + 1e-6)
    xs, ys, energies = policy.energy_grid(None, resolution=16)
    assert xs.shape == (16,) and ys.shape == (16,) and energies.shape == (16, 16)
    assert policy.config["model"]["kind"] == "ebm" and policy.config["data"]["history_length"] == 2
    with pytest.raises(ValueError, match="rgb"):
        policy.act({"state": np.zeros(10, np.float32)})


def test_history_padding_repeats_first_observation(pixel_policy_path: Path) -> None:
    policy = Policy.load(pixel_policy_path, device="cpu")
    first = {"state": np.ones(10, np.float32), "rgb": frames(1)[0]}
    _, _, single = policy.energy_grid([first], resolution=8)
    _, _, repeated = policy.energy_grid([first, first], resolution=8)
    np.testing.assert_array_equal(single, repeated)
    # The policy preprocesses raw frames with its own image spec.
    processed = preprocess_image(first["rgb"], policy.image_spec)
    assert processed.shape == (24, 32, 3)


def test_round_trip_gives_identical_actions(pixel_policy_path: Path, tmp_path: Path) -> None:
    network, artifacts, payload = load_checkpoint(pixel_policy_path)
    copy = save_checkpoint(tmp_path / "copy.pt", network, artifacts, payload["step"])
    assert copy.stat().st_mode & 0o777 == 0o644   # readable by the other users of a robot PC
    images = frames(4)
    np.testing.assert_array_equal(rollout(Policy.load(pixel_policy_path, "cpu"), images),
                                  rollout(Policy.load(copy, "cpu"), images))
    policy = Policy.load(copy, "cpu")
    np.testing.assert_array_equal(rollout(policy, images), rollout(policy, images))  # reset reseeds


@pytest.mark.parametrize("kind", ["ebm", "mse"])
def test_act_batch_acts_for_independent_histories(kind: str, pixel_data: Path, tmp_path: Path) -> None:
    policy = Policy.load(train(pixel_data, tmp_path, (f"model.kind={kind}",)), "cpu")
    images = frames(3)
    obs = [{"state": np.full(10, i, np.float32), "rgb": frame} for i, frame in enumerate(images)]
    histories = [obs[:1], obs[:3], obs[1:2]]   # the second is longer than history_length (2)
    actions = policy.act_batch(histories)
    assert actions.shape == (3, 2) and actions.dtype == np.float32
    assert np.all(actions >= policy.action_low - 1e-6) and np.all(actions <= policy.action_high + 1e-6)
    if kind == "mse":   # deterministic: exactly what act() gives after the same observations
        for history, action in zip(histories, actions):
            policy.reset()
            for observation in history[:-1]:
                policy.act(observation)
            np.testing.assert_allclose(policy.act(history[-1]), action, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="at least one observation"):
        policy.act_batch([obs[:1], []])


def test_time_limit_stops_training_at_a_reproducible_step(pixel_data: Path, tmp_path: Path) -> None:
    # A budget that runs out after the first step: the run saves and exports that step.
    stopped = read_checkpoint(train(pixel_data, tmp_path / "limited", ("optim.steps=8", "run.max_seconds=1e-9")))
    assert stopped["step"] == 1
    assert read_checkpoint(tmp_path / "limited" / "checkpoints" / "last.pt")["step"] == 1
    # The learning rate depends on the step alone: optim.steps=1 is the same run.
    straight = read_checkpoint(train(pixel_data, tmp_path / "straight", ("optim.steps=1",)))
    for key, value in straight["weights"].items():
        torch.testing.assert_close(stopped["weights"][key], value, rtol=0, atol=0, msg=key)
    with pytest.raises(ConfigError, match="max_seconds must be a finite number >= 0"):
        train(pixel_data, tmp_path / "bad", ("run.max_seconds=-1",))


def test_corrupt_truncated_and_mismatched_checkpoints(pixel_policy_path: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        Policy.load(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        Policy.load(garbage)
    data = pixel_policy_path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        Policy.load(truncated)

    payload = read_checkpoint(pixel_policy_path)

    def broken(name: str, change) -> Path:
        copy = {**payload, "weights": dict(payload["weights"]), "config": {**payload["config"]}}
        change(copy)
        path = tmp_path / f"{name}.pt"
        torch.save(copy, path)
        return path

    first_key = next(iter(payload["weights"]))
    with pytest.raises(CheckpointError, match=f"missing .*{first_key}"):
        Policy.load(broken("missing_key", lambda c: c["weights"].pop(first_key)))
    with pytest.raises(CheckpointError, match=f"wrong shape .*{first_key}"):
        Policy.load(broken("shape", lambda c: c["weights"].update({first_key: torch.zeros(3)})))
    with pytest.raises(CheckpointError, match="format_version 99"):
        Policy.load(broken("version", lambda c: c.update(format_version=99)))
    with pytest.raises(CheckpointError, match="model.mlp: width must be >= 1"):
        Policy.load(broken("config", lambda c: c["config"].update(
            model={**payload["config"]["model"], "mlp": {**payload["config"]["model"]["mlp"], "width": 0}})))
    with pytest.raises(CheckpointError, match="missing section"):
        Policy.load(broken("no_bounds", lambda c: c.pop("action_bounds")))


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="optim.lr"):
        load_config(TrainConfig, {}, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match="model.kind"):
        load_config(TrainConfig, {}, ["model.kind=transformer"])
    with pytest.raises(ConfigError, match="ebm.dfo: samples must be >= 1"):
        load_config(TrainConfig, {}, ["ebm.dfo.samples=0"])
    with pytest.raises(ConfigError, match="optim.batch_sise"):
        load_config(TrainConfig, {}, ["optim.batch_sise=3"])


@pytest.mark.parametrize("kind", ["mse", "mdn", "nn", "langevin", "autoregressive"])
def test_every_model_kind_round_trips(kind: str, pixel_data: Path, tmp_path: Path) -> None:
    overrides = {"mse": ("model.kind=mse",), "mdn": ("model.kind=mdn",), "nn": ("model.kind=nn",),
                 "langevin": ("ebm.sampler=langevin", "ebm.langevin.iterations=3", "model.mlp.spectral_norm=true",
                              "ebm.gradient_penalty.enabled=true", "ebm.langevin.inference_samples=32"),
                 "autoregressive": ("ebm.sampler=autoregressive",)}[kind]
    path = train(pixel_data, tmp_path, overrides)
    images = frames(3)
    first = rollout(Policy.load(path, "cpu"), images)
    np.testing.assert_array_equal(first, rollout(Policy.load(path, "cpu"), images))


def test_resume_continues_to_the_same_model(pixel_data: Path, tmp_path: Path) -> None:
    straight = read_checkpoint(train(pixel_data, tmp_path / "straight", ("optim.steps=8",)))
    train(pixel_data, tmp_path / "split", ("optim.steps=8", "run.checkpoint_every=4"))
    (tmp_path / "split" / "checkpoints" / "last.pt").replace(tmp_path / "split" / "final.pt")
    (tmp_path / "split" / "checkpoints" / "step_00000004.pt").rename(tmp_path / "split" / "checkpoints" / "last.pt")
    resumed = read_checkpoint(train(pixel_data, tmp_path / "split", ("optim.steps=8", "run.checkpoint_every=4"),
                                    resume=True))
    assert resumed["step"] == 8
    for key, value in straight["weights"].items():
        torch.testing.assert_close(resumed["weights"][key], value, rtol=0, atol=0, msg=key)
    with pytest.raises(ConfigError, match="model differs"):
        train(pixel_data, tmp_path / "split", ("optim.steps=8", "model.mlp.width=16"), resume=True)


def test_averaging_checkpoints_of_one_run(pixel_data: Path, tmp_path: Path) -> None:
    train(pixel_data, tmp_path / "run", ("optim.steps=8", "run.checkpoint_every=4"))
    steps = [tmp_path / "run" / "checkpoints" / f"step_0000000{n}.pt" for n in (4, 8)]
    network, artifacts, step = average_checkpoints(steps)
    assert step == 8
    members = [read_checkpoint(path)["weights"] for path in steps]
    for key, value in network.state_dict().items():
        torch.testing.assert_close(value, (members[0][key] + members[1][key]) / 2, msg=key)
    averaged = save_checkpoint(tmp_path / "averaged.pt", network, artifacts, step)
    assert rollout(Policy.load(averaged, "cpu"), frames(2)).shape == (2, 2)

    other_seed = train(pixel_data, tmp_path / "other", ("optim.steps=8", "run.seed=1"))
    with pytest.raises(CheckpointError, match=r"config\.run\.seed differ.*only checkpoints of one training run"):
        average_checkpoints([steps[0], other_seed])
    with pytest.raises(CheckpointError, match="at least 2"):
        average_checkpoints(steps[:1])
    spectral = train(pixel_data, tmp_path / "spectral", ("optim.steps=4", "run.checkpoint_every=2",
                                                         "model.mlp.spectral_norm=true"))
    with pytest.raises(CheckpointError, match="spectral-normalised"):
        average_checkpoints([spectral.parent / "checkpoints" / "step_00000002.pt", spectral])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_and_inference_match_cpu(pixel_data: Path, tmp_path: Path) -> None:
    path = train(pixel_data, tmp_path, ("run.device=cuda",))
    cpu, cuda = Policy.load(path, "cpu"), Policy.load(path, "cuda")
    assert cuda.device.type == "cuda"
    obs = {"state": np.zeros(10, np.float32), "rgb": frames(1)[0]}
    _, _, on_cpu = cpu.energy_grid(obs, resolution=16)
    _, _, on_cuda = cuda.energy_grid(obs, resolution=16)
    np.testing.assert_allclose(on_cpu, on_cuda, rtol=1e-3, atol=1e-3)
    action = cuda.act(obs)
    assert action.shape == (2,) and np.all(action >= cuda.action_low - 1e-6)


def test_load_overrides_change_inference_settings_only(pixel_policy_path: Path) -> None:
    policy = Policy.load(pixel_policy_path, "cpu", overrides=["ebm.dfo.samples=64"])
    assert policy.config["ebm"]["dfo"]["samples"] == 64
    assert rollout(policy, frames(1)).shape == (1, 2)
    with pytest.raises(CheckpointError, match="weights do not match"):
        Policy.load(pixel_policy_path, "cpu", overrides=["model.mlp.width=8"])
    # A bad setting is the caller's error, named as such (not "invalid stored configuration").
    with pytest.raises(ConfigError, match="setting 'ebm.dfo.samples=0' .*ebm.dfo: samples must be >= 1"):
        Policy.load(pixel_policy_path, "cpu", overrides=["ebm.dfo.samples=0"])
    with pytest.raises(ConfigError, match="unknown field.*ebm.dfo.sample"):
        Policy.load(pixel_policy_path, "cpu", overrides=["ebm.dfo.sample=64"])


def test_training_precision_is_fast_where_it_runs() -> None:
    from ibc_core.training.trainer import training_precision
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert training_precision("auto", cpu, fast_bfloat16=True) == torch.bfloat16
    # The reported defect: auto used inference's choice, int8 (no autocast dtype) on AVX2 CPUs.
    assert training_precision("auto", cpu, fast_bfloat16=False) == torch.float32
    assert training_precision("auto", cuda) == torch.bfloat16
    assert training_precision("float32", cpu, fast_bfloat16=True) == torch.float32
    with pytest.warns(RuntimeWarning, match="bfloat16 is emulated here"):
        assert training_precision("bfloat16", cpu, fast_bfloat16=False) == torch.bfloat16
