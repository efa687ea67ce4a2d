"""Samplers on known analytic energies (no training): DFO and autoregressive DFO find the
argmin; the correct Langevin update samples a Gaussian energy with the right moments and the
paper's update does not; training noise is a function of (seed, step, sample) only."""
from __future__ import annotations

import pytest
import torch

from ibc_core.samplers.autoregressive import autoregressive_dfo
from ibc_core.samplers.dfo import dfo_optimize, resample
from ibc_core.samplers.langevin import langevin_chain, step_size
from ibc_core.samplers.noise import GeneratorNoise, HashedNoise
from ibc_core.config import DFOConfig, LangevinConfig

CPU = torch.device("cpu")
WIDTH = 0.1  # std of the analytic Gaussian energies


def quadratic_energy(centers: torch.Tensor):
    """E(a) = ||a - c||^2 / (2 WIDTH^2) per batch row; argmin c."""
    return lambda actions: ((actions - centers[:, None, : actions.shape[-1]]) ** 2).sum(-1) / (2 * WIDTH ** 2)


def random_centers(batch: int, dim: int, seed: int) -> torch.Tensor:
    return torch.rand(batch, dim, generator=torch.Generator().manual_seed(seed)) * 1.6 - 0.8


@pytest.mark.parametrize("dim, tolerance", [(1, 0.005), (2, 0.01), (4, 0.05)])
def test_dfo_recovers_argmin(dim: int, tolerance: float) -> None:
    centers = random_centers(8, dim, seed=dim)
    noise = GeneratorNoise(torch.Generator().manual_seed(0), CPU)
    best, samples, energies = dfo_optimize(quadratic_energy(centers), 8, dim, DFOConfig(), noise, CPU)
    error = (best - centers).abs().max().item()
    assert error < tolerance, f"DFO {dim}-D max error {error:.4f}"
    # The returned energies belong to the returned (final) samples.
    assert torch.allclose(energies, quadratic_energy(centers)(samples))


def test_autoregressive_dfo_recovers_argmin_in_8d() -> None:
    dim, batch = 8, 8
    centers = random_centers(batch, dim, seed=8)
    noise = GeneratorNoise(torch.Generator().manual_seed(0), CPU)
    config = DFOConfig(samples=1024)
    # Model j scores the prefix a[:j+1] (the marginal energy of a factorised Gaussian).
    best, losses = autoregressive_dfo(lambda j, a: quadratic_energy(centers)(a), batch, dim, config, noise, CPU)
    assert losses == []
    ar_error = (best - centers).abs().max().item()
    plain, _, _ = dfo_optimize(quadratic_energy(centers), batch, dim, DFOConfig(samples=1024 * dim),
                               GeneratorNoise(torch.Generator().manual_seed(0), CPU), CPU)
    plain_error = (plain - centers).abs().max().item()
    assert ar_error < 0.1, f"autoregressive DFO 8-D max error {ar_error:.4f}"
    assert ar_error < plain_error, f"AR {ar_error:.4f} vs plain DFO with the same budget {plain_error:.4f}"


def gaussian_moments(update: str, chains: int = 4096, steps: int = 1500, step: float = 2e-4):
    mean, width = 0.2, WIDTH
    config = LangevinConfig(iterations=steps, step_init=step, step_final=step, power=1.0,
                            delta_clip=None, noise_scale=1.0, update=update)
    energy = lambda a: ((a - mean) ** 2).sum(-1) / (2 * width ** 2)
    generator = torch.Generator().manual_seed(1)
    initial = torch.rand(1, chains, 1, generator=generator) * 2 - 1
    samples = langevin_chain(energy, initial, config, GeneratorNoise(generator, CPU)).flatten()
    return samples.mean().item(), samples.var().item()


def test_correct_langevin_samples_the_gaussian_and_paper_update_does_not() -> None:
    target_var = WIDTH ** 2 / (1 - 2e-4 / (2 * WIDTH ** 2))  # exact stationary variance of eq. 8
    mean, var = gaussian_moments("correct")
    assert abs(mean - 0.2) < 0.01
    assert abs(var / target_var - 1) < 0.1, f"correct update variance {var:.5f} vs {target_var:.5f}"
    paper_mean, paper_var = gaussian_moments("ibc")
    assert abs(paper_mean - 0.2) < 0.01
    assert paper_var < 0.1 * target_var, f"paper update variance {paper_var:.2e} should collapse"


def test_langevin_step_schedule_is_polynomial() -> None:
    config = LangevinConfig(iterations=11, step_init=0.1, step_final=1e-5, power=2.0)
    assert step_size(config, 0) == pytest.approx(0.1)
    assert step_size(config, 10) == pytest.approx(1e-5)
    assert step_size(config, 5) == pytest.approx((0.1 - 1e-5) * 0.25 + 1e-5)


def test_langevin_delta_is_clipped() -> None:
    config = LangevinConfig(iterations=1, step_init=10.0, step_final=10.0, delta_clip=0.1, noise_scale=0.0)
    start = torch.zeros(1, 4, 1)
    moved = langevin_chain(lambda a: (100.0 * a).sum(-1), start, config,
                           GeneratorNoise(torch.Generator().manual_seed(0), CPU))
    assert torch.allclose(moved, torch.full_like(moved, -0.1))


def test_resampling_follows_softmax_probabilities() -> None:
    energies = torch.log(torch.tensor([[1.0, 2.0, 3.0, 4.0]])).neg()  # p = 0.1, 0.2, 0.3, 0.4
    samples = torch.arange(4.0).view(1, 4, 1).expand(1, 4, 1)
    noise = GeneratorNoise(torch.Generator().manual_seed(0), CPU)
    counts = torch.zeros(4)
    for _ in range(2000):
        counts += torch.bincount(resample(samples, energies, noise).flatten().long(), minlength=4)
    assert torch.allclose(counts / counts.sum(), torch.tensor([0.1, 0.2, 0.3, 0.4]), atol=0.01)


def test_hashed_noise_depends_only_on_seed_step_and_sample() -> None:
    whole = HashedNoise(3, 7, torch.arange(8))
    half = HashedNoise(3, 7, torch.arange(4, 8))
    assert torch.equal(whole.uniform(8, 5, 2)[4:], half.uniform(4, 5, 2))
    assert torch.equal(whole.normal(8, 3)[4:], half.normal(4, 3))
    other_step = HashedNoise(3, 8, torch.arange(8)).uniform(8, 5, 2)
    assert not torch.equal(other_step, HashedNoise(3, 7, torch.arange(8)).uniform(8, 5, 2))
    values = HashedNoise(0, 0, torch.arange(256)).uniform(256, 1000).flatten()
    assert 0.0 <= values.min() and values.max() < 1.0
    assert abs(values.mean().item() - 0.5) < 0.005 and abs(values.std().item() - 12 ** -0.5) < 0.005
    normals = HashedNoise(0, 0, torch.arange(256)).normal(256, 1000).flatten()
    assert abs(normals.mean().item()) < 0.01 and abs(normals.std().item() - 1) < 0.01


@pytest.mark.parametrize("make", [lambda: HashedNoise(3, 17, torch.arange(5, 9)),
                                  lambda: GeneratorNoise(torch.Generator().manual_seed(4), CPU)])
def test_normal_sequence_is_the_same_draws_as_one_call_each(make) -> None:
    """A Langevin chain draws all its steps' noise at once; the values (and every later draw)
    are exactly those of one normal() call per step, so chains and training runs are unchanged."""
    one_by_one, at_once = make(), make()
    expected = [one_by_one.uniform(4, 3), *[one_by_one.normal(4, 6, 2) for _ in range(7)], one_by_one.uniform(4, 5)]
    drawn = [at_once.uniform(4, 3), *at_once.normal_sequence(7, 4, 6, 2), at_once.uniform(4, 5)]
    for want, got in zip(expected, drawn, strict=True):
        assert torch.equal(want, got)
