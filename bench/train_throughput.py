"""Training throughput (steps/s) of the EBM training step, timed interleaved in one run:

  reference  the straightforward step: observation features tiled to every counter-example
             and concatenated with the actions ([B * (N + 1), F + A] rows through the MLP);
  optimised  ibc_core's step (what ibc-train runs): late fusion, the features' first layer
             computed once per sample and broadcast over its N + 1 actions;
  bf16       the optimised step under torch.autocast(bfloat16): measured, not shipped (it
             changes training numerics and needs a config switch; see docs/BENCHMARKS.md).

Each candidate has its own copy of the same initial weights and Adam; the counter-examples
come from the same counter-based noise, so reference and optimised compute the same loss.

    ./run.sh python -m bench.train_throughput --config states     # batch 512, 256 negatives, 128x8
    ./run.sh python -m bench.train_throughput --config push_pixels
"""
from __future__ import annotations

import argparse
import contextlib
import copy
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from bench.common import finish, interleaved, machine, percentiles
from bench.reference_dfo import reference_energies
from ibc_core.checkpoint import PolicyArtifacts
from ibc_cli.bench import named_artifacts, random_training_batch
from ibc_core.losses import info_nce
from ibc_core.models.energy import EnergyNetwork
from ibc_core.samplers.noise import HashedNoise

# The states DFO setting: batch 512, 256 counter-examples, 128-wide 8-layer dense ResNet.
CONFIGS = {"states": ("push_states", ["optim.batch_size=512", "ebm.counter_examples=256",
                                      "model.mlp.width=128", "model.mlp.depth=8"]),
           "push_pixels": ("push_pixels", [])}
Batch = tuple[dict[str, torch.Tensor], torch.Tensor]


def random_batch(artifacts: PolicyArtifacts, batch: int) -> Batch:
    """On its own seeded generator: the same batch on every run, whatever else drew from torch's RNG."""
    return random_training_batch(artifacts.spec, batch, generator=torch.Generator().manual_seed(0))


def reference_loss(network: EnergyNetwork, obs: dict[str, torch.Tensor], actions: torch.Tensor,
                   noise: HashedNoise) -> torch.Tensor:
    features = network.features(obs)
    negatives = network.counter_examples(features, noise)
    energies = reference_energies(network, features, torch.cat([actions.unsqueeze(1), negatives], dim=1))
    return info_nce(energies[:, 0], energies[:, 1:])


def optimised_loss(network: EnergyNetwork, obs: dict[str, torch.Tensor], actions: torch.Tensor,
                   noise: HashedNoise) -> torch.Tensor:
    return network.loss(network.features(obs), actions, noise)[0]


def training_step(network: EnergyNetwork, loss_fn: Callable[..., torch.Tensor], batch: Batch,
                  autocast: bool) -> Callable[[int], float]:
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    obs, actions = batch
    ids = torch.arange(len(actions))

    def step(index: int) -> float:
        precision = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with precision:
            loss = loss_fn(network, obs, actions, HashedNoise(0, index, ids))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


def candidates(artifacts: PolicyArtifacts, batch: Batch, with_bf16: bool) -> dict[str, Callable[[int], float]]:
    torch.manual_seed(0)
    network = artifacts.build().train()
    if not isinstance(network, EnergyNetwork):
        raise ValueError("the training benchmark covers EnergyNetwork (DFO / Langevin) configs")
    steps = {"reference": training_step(copy.deepcopy(network), reference_loss, batch, autocast=False),
             "optimised": training_step(copy.deepcopy(network), optimised_loss, batch, autocast=False)}
    if with_bf16:
        steps["bf16"] = training_step(copy.deepcopy(network), optimised_loss, batch, autocast=True)
    return steps


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="states")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per candidate")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-bf16", action="store_true", help="skip the bfloat16 autocast candidate")
    parser.add_argument("--json", help="also write the report here")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides (e.g. optim.batch_size=64)")
    args = parser.parse_intermixed_args(argv)
    torch.set_num_threads(args.threads)
    conditions = machine()   # load average before the timed steps
    name, overrides = CONFIGS[args.config]
    artifacts = named_artifacts(name, [*overrides, *args.overrides])
    cfg = artifacts.config
    batch = random_batch(artifacts, cfg.optim.batch_size)
    steps = candidates(artifacts, batch, not args.no_bf16)
    first_losses = {label: step(0) for label, step in steps.items()}  # also the first warm-up step
    times = interleaved(steps, args.repeats, max(args.warmup - 1, 0))
    results: dict[str, Any] = {}
    for label, values in times.items():
        results[label] = {"steps_per_s": float(1.0 / np.median(values)), **percentiles(values),
                          "first_loss": first_losses[label]}
    for label in list(results):
        if label != "reference":
            results[f"speedup_{label}"] = results[label]["steps_per_s"] / results["reference"]["steps_per_s"]
    report = {"benchmark": "train_throughput", "config": args.config,
              "batch_size": cfg.optim.batch_size, "counter_examples": cfg.ebm.counter_examples,
              "mlp": f"{cfg.model.mlp.width}x{cfg.model.mlp.depth}", "machine": conditions, **results}
    finish(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
