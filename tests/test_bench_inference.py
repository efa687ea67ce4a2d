"""The optimised DFO inference against the straightforward reference in bench/: float32 gives
the same actions, samples and energies for a fixed seed; a bfloat16 or int8 search re-scored in
float32 never returns a worse float32 energy than its own choice; the inference benchmark runs
with tiny settings. (Timings are benchmarks, never asserted here.)"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import dfo_inference
from bench.reference_dfo import reference_dfo, reference_energies
from ibc_cli.bench import named_artifacts
from ibc_core.models import mlp as mlp_module
from ibc_core.models.mlp import MLP
from ibc_core.samplers.dfo import dfo_optimize
from ibc_core.samplers.noise import GeneratorNoise
from ibc_core.config import MLPConfig

CPU = torch.device("cpu")


def small_pair(config: str, precision: str):
    return dfo_inference.policy_pair(config, None, 256, precision, CPU, recorded_frames=False)


@pytest.mark.parametrize("config", ["push_pixels", "push_states"])
def test_float32_policy_matches_reference_actions(config: str) -> None:
    optimised, reference = small_pair(config, "float32")
    observations = dfo_inference.synthetic_observations(optimised, 3)
    for obs in observations:  # one episode: the history and the generator carry over
        np.testing.assert_allclose(optimised.act(obs), reference.act(obs), rtol=0, atol=1e-6)


def test_float32_dfo_matches_reference_samples_and_energies() -> None:
    optimised, reference = small_pair("push_pixels", "float32")
    obs = dfo_inference.synthetic_observations(optimised, 1)[0]
    network = optimised.network
    with torch.inference_mode():
        features = network.features(optimised._batch([optimised._padded([optimised._prepare(obs)])]))
        energy = network._bound_energy(features, torch.float32)
        best, samples, energies = dfo_optimize(energy, 1, 2, network.ebm.dfo,
                                               GeneratorNoise(torch.Generator().manual_seed(5), CPU), CPU)
        ref_best, ref_samples, ref_energies = reference_dfo(network, features, torch.Generator().manual_seed(5))
        torch.testing.assert_close(samples, ref_samples, rtol=0, atol=1e-6)
        torch.testing.assert_close(energies, ref_energies, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(best, ref_best, rtol=0, atol=1e-6)
        # The final energies belong to the final samples.
        torch.testing.assert_close(energies, reference_energies(network, features, samples), rtol=1e-5, atol=1e-5)


needs_int8 = pytest.mark.skipif(not mlp_module.int8_linear_available(), reason="no FBGEMM int8 kernels")
LOW_PRECISIONS = [torch.bfloat16, pytest.param(torch.qint8, marks=needs_int8)]


@pytest.mark.parametrize("dtype", LOW_PRECISIONS)
def test_low_precision_choice_is_rescored_in_float32(dtype: torch.dtype) -> None:
    optimised, _ = small_pair("push_pixels", "float32")
    network = optimised.network
    obs = dfo_inference.synthetic_observations(optimised, 1)[0]
    with torch.inference_mode():
        features = network.features(optimised._batch([optimised._padded([optimised._prepare(obs)])]))
        fast, exact = network._bound_energy(features, dtype), network._bound_energy(features, torch.float32)
        noise = lambda: GeneratorNoise(torch.Generator().manual_seed(3), CPU)
        chosen, samples, fast_energies = dfo_optimize(fast, 1, 2, network.ebm.dfo, noise(), CPU, rescore_fn=exact)
        plain, _, _ = dfo_optimize(fast, 1, 2, network.ebm.dfo, noise(), CPU)
        # Rescoring picks among the final samples, never worse (float32) than the fast argmin.
        assert (samples[0] == chosen[0]).all(-1).any()
        assert exact(chosen[:, None]).item() <= exact(plain[:, None]).item()
        # The fast energies track the float32 ones (bfloat16: 8-bit mantissa, ~1 % relative;
        # int8: 127 levels per weight row, 7-bit activations per call).
        error = (fast_energies - exact(samples)).abs().max().item()
        spread = exact(samples).abs().max().item()
        assert error <= 0.03 * spread + 0.03, (error, spread)


def test_bind_and_frozen_copy_equal_the_module() -> None:
    torch.manual_seed(0)
    mlp = MLP((6, 2), 1, MLPConfig(width=32, depth=5, resnet=True, spectral_norm=True)).eval()
    features, actions = torch.randn(3, 1, 6), torch.rand(3, 40, 2)
    with torch.no_grad():
        expected = mlp(features, actions)
        torch.testing.assert_close(mlp.bind(features)(actions), expected, rtol=0, atol=0)
        torch.testing.assert_close(mlp.frozen(torch.float32).bind(features)(actions), expected, rtol=1e-6, atol=1e-6)
    assert not any(p.requires_grad for p in mlp.frozen(torch.float32).parameters())
    with torch.no_grad():  # making copies leaves the original (and its spectral norms) intact
        torch.testing.assert_close(mlp(features, actions), expected, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", LOW_PRECISIONS)
@pytest.mark.parametrize("resnet", [False, True])
def test_low_precision_frozen_copy_tracks_float32(resnet: bool, dtype: torch.dtype) -> None:
    torch.manual_seed(1)
    mlp = MLP((6, 2), 1, MLPConfig(width=64, depth=4, resnet=resnet)).eval()
    fast = mlp.frozen(dtype)
    if dtype == torch.bfloat16:
        # Plain ReLU MLPs take the fused linear+ReLU path (where oneDNN runs it); ResNets never do.
        assert (fast._relu_chain is not None) == (not resnet and mlp_module.fused_bfloat16_relu_available())
    else:
        # int8: the hidden layers only; input layers and the energy head stay float32.
        assert isinstance(fast.hidden[-1], mlp_module.DynamicInt8Linear)
        assert isinstance(fast.head[-1], torch.nn.Linear) and isinstance(fast.inputs[0], torch.nn.Linear)
    compute = torch.float32 if dtype == torch.qint8 else dtype
    features, actions = torch.randn(2, 1, 6), torch.rand(2, 300, 2) * 2 - 1
    with torch.no_grad():
        expected = mlp(features, actions)
        got = fast.bind(features.to(compute))(actions.to(compute)).float()
    torch.testing.assert_close(got, expected, rtol=0.05, atol=0.02)
    with torch.no_grad():  # the original keeps its float32 layers
        torch.testing.assert_close(mlp(features, actions), expected, rtol=0, atol=0)


def test_training_mode_drops_frozen_copies() -> None:
    optimised, _ = small_pair("push_states", "bfloat16")
    optimised.act(dfo_inference.synthetic_observations(optimised, 1)[0])
    assert optimised.network._frozen
    optimised.network.train()
    assert not optimised.network._frozen


def test_inference_benchmark_runs_with_tiny_settings(tmp_path: Path) -> None:
    out = tmp_path / "inference.json"
    assert dfo_inference.main(["--config", "push_states", "--samples", "64", "128", "--repeats", "2",
                               "--warmup", "0", "--quality", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [run["samples"] for run in report["runs"]] == [64, 128]
    for run in report["runs"]:
        assert run["reference"]["n"] == run["optimised"]["n"] == 2
        assert run["ratio_p50"] > 0 and run["quality"]["observations"] == 2
    assert len(report["machine"]["load_average_start"]) == 3


def test_reference_rejects_non_dfo_policies() -> None:
    artifacts = named_artifacts("push_states", ["model.kind=mse"])
    from bench.reference_dfo import ReferencePolicy
    from ibc_core.policy import Policy
    with pytest.raises(ValueError, match="DFO"):
        ReferencePolicy(Policy(artifacts.build(), artifacts, CPU))
