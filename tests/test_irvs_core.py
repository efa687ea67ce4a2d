"""IRvS building blocks (fast, real training on tiny data): returns from episodes, the dataset
with returns, config validation, the joint energy model's tilted inference, checkpoints with
the inverse_eta hook, dataset mixing, the noisy oracle with kept failures, and the marginal
action sampler / max-entropy options of ebm_theory_vs_practice."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ibc_core.config_io import ConfigError, load_config
from ibc_core.data.episodes import DatasetError, DatasetWriter, Episode, iter_episodes, read_meta
from ibc_core.data.memory import load_demonstrations
from ibc_core.irvs.mix import mix, parse_source
from ibc_core.irvs.returns import RETURN_KEY, episode_returns, normalize_returns, with_returns
from ibc_core.irvs.trainer import IRvSTrainer
from ibc_core.losses import energy_variance, max_entropy_loss
from ibc_core.policy import Policy
from ibc_core.models.marginal import MarginalActionEBM
from ibc_core.samplers.noise import GeneratorNoise
from ibc_core.config import IRvSConfig, MarginalSamplerConfig, TrainConfig
from ibc_core.training.trainer import Trainer
from ibc_cli import data as data_cli


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def episode(steps: int, success: bool, info: dict | None = None, action: float = 0.0) -> Episode:
    states = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return Episode(actions=np.full((steps, 1), action, np.float32), observations={"state": states},
                   success=success, info=info or {})


def write(root: Path, episodes: list[Episode], low: float = -1.0) -> Path:
    writer = DatasetWriter(root, {"task": "toy", "action_low": [low], "action_high": [1.0], "control_hz": 1.0,
                                  "observation_keys": ["state"], "state_dim": 1})
    for item in episodes:
        writer.add(item)
    return root


def test_returns_reward_success_sooner_and_honour_recorded_rewards() -> None:
    np.testing.assert_allclose(episode_returns(episode(3, True), 0.5), [0.25, 0.5, 1.0])
    np.testing.assert_allclose(episode_returns(episode(3, False), 0.5), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(episode_returns(episode(2, True, {"reward": -0.25}), 1.0), [-0.25, -0.25])
    normalized = normalize_returns(np.array([0.0, 0.5, 1.0]), buffer=0.05)
    np.testing.assert_allclose(normalized, [-1 / 1.1, 0.0, 1 / 1.1], rtol=1e-6)
    with pytest.raises(DatasetError, match="all returns equal"):
        normalize_returns(np.ones(4), 0.05)


def test_dataset_with_returns_keeps_failures_and_checks_alignment(tmp_path: Path) -> None:
    root = write(tmp_path / "d", [episode(4, True), episode(3, False), episode(5, True)])
    cfg = IRvSConfig(discount=0.9, return_buffer=0.0)
    demos = with_returns(load_demonstrations(root, 2, successful_only=False, progress=False), root, cfg, False, None)
    assert len(demos.returns) == 12 and demos.returns.min() == -1.0 and demos.returns.max() == 1.0
    assert torch.all(demos.returns[4:7] == -1.0)                     # the failed episode: lowest return
    batch = demos.observations(torch.tensor([3, 5]))
    assert batch["state"].shape == (2, 2, 1) and torch.equal(batch[RETURN_KEY], demos.returns[[3, 5]])
    successes_only = load_demonstrations(root, 2, successful_only=True, progress=False)
    with pytest.raises(DatasetError, match="do not match"):
        with_returns(successes_only, root, cfg, False, None)


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ConfigError, match="inverse_eta"):
        load_config(TrainConfig, {"irvs": {"inverse_eta": -1.0}})
    with pytest.raises(ConfigError, match="ebm.sampler"):
        load_config(TrainConfig, {"model": {"kind": "irvs"}, "ebm": {"sampler": "autoregressive"}})
    with pytest.raises(ConfigError, match="max_entropy_weight"):
        load_config(TrainConfig, {"ebm": {"max_entropy_weight": -0.1}})
    with pytest.raises(ConfigError, match="model.kind: irvs"):
        IRvSTrainer(load_config(TrainConfig, {}))


def tiny_config(data: Path, out: Path, kind: str, *overrides: str) -> TrainConfig:
    raw = {"data": {"path": str(data), "history_length": 1, "successful_only": kind != "irvs"},
           "model": {"kind": kind, "mlp": {"width": 32, "depth": 2}},
           "ebm": {"counter_examples": 16, "dfo": {"samples": 256}},
           "optim": {"batch_size": 32, "steps": 30},
           "run": {"out_dir": str(out), "progress": False, "checkpoint_every": 1000}}
    return load_config(TrainConfig, raw, list(overrides))


def test_irvs_checkpoint_round_trip_and_inverse_eta_override(tmp_path: Path) -> None:
    root = write(tmp_path / "d", [episode(6, True, action=0.5), episode(6, False, action=-0.5)])
    path = IRvSTrainer(tiny_config(root, tmp_path / "run", "irvs")).run()
    policy = Policy.load(path, device="cpu", overrides=["irvs.inverse_eta=3.5"])
    assert policy.config["irvs"]["inverse_eta"] == 3.5 and policy.config["model"]["kind"] == "irvs"
    action = policy.act({"state": np.array([0.2], np.float32)})
    assert action.shape == (1,) and policy.action_low[0] <= action[0] <= policy.action_high[0]
    again = Policy.load(path, device="cpu", overrides=["irvs.inverse_eta=3.5"])
    np.testing.assert_array_equal(again.act({"state": np.array([0.2], np.float32)}), action)
    assert policy.energies({"state": np.array([0.2], np.float32)}, np.array([[0.0], [0.4]])).shape == (2,)
    # The tilt decides the return the policy aims for: a huge 1/eta picks the top of the range.
    network = Policy.load(path, device="cpu", overrides=["irvs.inverse_eta=1000"]).network
    with torch.no_grad():
        features = network.features({"state": torch.zeros(1, 1, 1)})
        chosen = network.predict_joint(features, GeneratorNoise(torch.Generator().manual_seed(0), torch.device("cpu")))
    assert chosen[0, -1] > 0.9


def test_mix_merges_datasets_and_refuses_mismatched_ones(tmp_path: Path) -> None:
    first = write(tmp_path / "a", [episode(3, True), episode(4, True)])
    second = write(tmp_path / "b", [episode(2, False)])
    assert parse_source(f"{first}:1") == (first, 1) and parse_source(str(second)) == (second, None)
    assert mix(tmp_path / "m", [(first, 1), (second, None)]) == 2
    merged = list(iter_episodes(tmp_path / "m"))
    assert [len(e) for e in merged] == [3, 2] and [e.success for e in merged] == [True, False]
    assert read_meta(tmp_path / "m")["source"] == "mix"
    other = write(tmp_path / "c", [episode(2, True)], low=-2.0)
    with pytest.raises(DatasetError, match="action_low"):
        mix(tmp_path / "n", [(first, None), (other, None)])
    assert not (tmp_path / "n").exists()


def test_noisy_oracle_keeps_failures_and_is_reproducible(tmp_path: Path) -> None:
    args = ["generate", "--task", "particle_2d", "--episodes", "6", "task.oracle_noise=0.6", "--keep-failed"]
    assert data_cli.main([*args, "--out", str(tmp_path / "one")]) == 0
    assert data_cli.main([*args, "--out", str(tmp_path / "two"), "--workers", "2"]) == 0
    one, two = list(iter_episodes(tmp_path / "one")), list(iter_episodes(tmp_path / "two"))
    assert len(one) == 6 and not all(e.success for e in one)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a.actions, b.actions)
    assert read_meta(tmp_path / "one")["oracle_noise"] == 0.6
    assert data_cli.main(["generate", "--task", "particle_2d", "--episodes", "1", "--out", str(tmp_path / "bad"),
                          "task.oracle_noise=-1"]) == 2


def test_max_entropy_terms() -> None:
    negatives = torch.tensor([[1.0, 3.0], [2.0, 2.0]])
    assert energy_variance(negatives).item() == pytest.approx(0.5 * 0.5 * (1.0 + 0.0))
    positives = torch.tensor([0.0, 1.0])
    expected = (0.5 - 2.0) + 2.0 * 0.25 + 0.1 * 0.5
    assert max_entropy_loss(positives, negatives, 2.0, 0.1).item() == pytest.approx(expected)


def test_marginal_sampler_learns_where_the_actions_are() -> None:
    """Trained by its max-entropy loss on its own Langevin samples, the marginal EBM's samples
    move from uniform onto the data's two clusters (actions at -0.6 and +0.6)."""
    torch.manual_seed(0)
    model = MarginalActionEBM(1, MarginalSamplerConfig())
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    noise = GeneratorNoise(torch.Generator().manual_seed(0), torch.device("cpu"))
    for _ in range(300):
        positives = torch.where(torch.rand(64, 1) < 0.5, -0.6, 0.6) + 0.03 * torch.randn(64, 1)
        loss = model.loss(positives, model.sample(noise, 64, 8))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    samples = model.sample(noise, 64, 8).flatten()
    near_data = ((samples.abs() - 0.6).abs() < 0.2).float().mean().item()
    assert near_data > 0.6, near_data          # uniform samples: 0.4 of the mass lies there
    assert (samples < 0).float().mean().item() > 0.2 and (samples > 0).float().mean().item() > 0.2


@pytest.mark.parametrize("options", [("ebm.marginal.enabled=true",), ("ebm.max_entropy_weight=1.0",)])
def test_ebm_trains_and_round_trips_with_marginal_sampler_or_max_entropy(options, tmp_path: Path) -> None:
    root = write(tmp_path / "d", [episode(20, True, action=0.5)])
    cfg = tiny_config(root, tmp_path / "run", "ebm", "ebm.sampler=langevin", "ebm.langevin.iterations=5",
                      "ebm.langevin.inference_samples=64", *options)
    path = Trainer(cfg).run()
    policy = Policy.load(path, device="cpu")
    assert (policy.network.marginal is not None) == ("ebm.marginal.enabled=true" in options)
    assert np.isfinite(policy.act({"state": np.array([0.3], np.float32)})).all()
