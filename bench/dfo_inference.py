"""DFO inference: optimised Policy.act() vs the straightforward reference (bench/reference_dfo.py),
timed interleaved in one run, plus the quality of the chosen actions.

    ./run.sh python -m bench.dfo_inference --config paper_real --samples 1024 2048 4096 16384
    ./run.sh python -m bench.dfo_inference --config push_pixels
    ./run.sh python -m bench.dfo_inference --checkpoint runs/push_pixels/checkpoints/last.pt \\
        --dataset data/push_pixels              # quality on recorded observations

Named configs (random weights, real shapes) come from ibc_cli.bench (paper_real = the
paper's real-robot model, push_pixels = config/train_push_pixels.yaml). Timed act() calls take
a 640x360 frame (or a recorded frame with --dataset). Quality: for each observation both sides
act from the same seed; the float32 energy of each chosen action is evaluated by the float32
network. delta = E(optimised choice) - E(reference choice), also in units of the energy
spread (std over uniform random actions): negative or ~0 means no loss.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
from typing import Any, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from bench.common import finish, interleaved, machine, percentiles
from bench.reference_dfo import ReferencePolicy
from ibc_core.checkpoint import load_checkpoint
from ibc_cli.bench import FRAME_HW, named_artifacts
from ibc_core.data.episodes import iter_episodes
from ibc_core.data.preprocess import ImageSpec
from ibc_core.policy import Policy, resolve_device


def policy_pair(config: Optional[str], checkpoint: Optional[str], samples: Optional[int], precision: str,
                device: torch.device, recorded_frames: bool) -> tuple[Policy, ReferencePolicy]:
    """(optimised policy, reference) sharing weights (deep copies), seed and observation handling."""
    overrides = [f"ebm.dfo.samples={samples}"] if samples else []
    if checkpoint:
        network, artifacts, _ = load_checkpoint(checkpoint, device, overrides)
    else:
        torch.manual_seed(0)
        artifacts = named_artifacts(config, overrides)
        network = artifacts.build()
    if recorded_frames and artifacts.image_spec:
        # Recorded frames are already cropped and resized: make preprocessing the identity.
        spec = artifacts.image_spec
        artifacts = dataclasses.replace(artifacts, image_spec=ImageSpec(spec.height, spec.width))
    optimised = Policy(network, artifacts, device, precision)
    reference = ReferencePolicy(Policy(copy.deepcopy(network), artifacts, device, "float32"))
    return optimised, reference


def synthetic_observations(policy: Policy, count: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    observations = []
    for _ in range(count):
        obs = {}
        if "state" in policy.observation_keys:
            obs["state"] = rng.normal(size=policy.artifacts.spec.state_dim).astype(np.float32)
        if "rgb" in policy.observation_keys:
            obs["rgb"] = rng.integers(0, 256, (*FRAME_HW, 3), dtype=np.uint8)
        observations.append(obs)
    return observations


def recorded_observations(dataset: str, keys: Sequence[str], count: int) -> list[dict[str, np.ndarray]]:
    """`count` observations spread over the dataset's episodes (every 7th step)."""
    observations = []
    for episode in iter_episodes(dataset):
        steps = len(episode.actions)
        for t in range(0, steps, 7):
            observations.append({key: episode.observations[key][t] for key in keys})
            if len(observations) == count:
                return observations
    return observations


def time_pair(optimised: Policy, reference: ReferencePolicy, observations: list[dict[str, np.ndarray]],
              repeats: int, warmup: int) -> dict[str, Any]:
    pick = lambda rep: observations[rep % len(observations)]
    times = interleaved({"reference": lambda rep: reference.act(pick(rep)),
                         "optimised": lambda rep: optimised.act(pick(rep))}, repeats, warmup)
    result = {name: percentiles(values) for name, values in times.items()}
    result["ratio_p50"] = result["optimised"]["p50_ms"] / result["reference"]["p50_ms"]
    # Ratio per repetition (neighbours in time, same load), then its median: robust to drifts.
    pairwise = np.asarray(times["optimised"]) / np.asarray(times["reference"])
    result["ratio_pairwise_median"] = float(np.median(pairwise))
    return result


def quality(optimised: Policy, reference: ReferencePolicy,
            observations: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Energies (float32 network) of both sides' chosen actions, each from a fresh episode."""
    rng = np.random.default_rng(1)
    low, high = optimised.action_low, optimised.action_high
    deltas, spreads, action_gaps = [], [], []
    for obs in tqdm(observations, desc="quality", leave=False):
        optimised.reset()
        reference.reset()
        chosen = np.stack([optimised.act(obs), reference.act(obs)])
        energies = optimised.energies([obs], chosen)
        uniform = rng.uniform(low, high, size=(256, len(low))).astype(np.float32)
        spreads.append(float(optimised.energies([obs], uniform).std()))
        deltas.append(float(energies[0] - energies[1]))
        action_gaps.append(float(np.abs(chosen[0] - chosen[1]).max()))
    deltas_arr, relative = np.asarray(deltas), np.asarray(deltas) / np.asarray(spreads)
    return {"observations": len(observations),
            "energy_delta_median": float(np.median(deltas_arr)), "energy_delta_max": float(deltas_arr.max()),
            "energy_delta_over_spread_median": float(np.median(relative)),
            "energy_delta_over_spread_max": float(relative.max()),
            "same_action_fraction": float(np.mean(np.asarray(action_gaps) < 1e-6)),
            "action_gap_max": float(max(action_gaps))}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", default="paper_real", help="named config of ibc_cli.bench")
    source.add_argument("--checkpoint", help="a trained policy / checkpoint file")
    parser.add_argument("--dataset", help="take observations from this dataset (recorded) instead of random")
    parser.add_argument("--samples", type=int, nargs="+", default=[None],
                        help="DFO samples to measure (default: the config's ebm.dfo.samples)")
    parser.add_argument("--precision", default="auto", help="optimised side: auto | float32 | bfloat16 | int8")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30, help="timed act() calls per side")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quality", type=int, default=16, help="observations for the energy comparison (0: off)")
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    report: dict[str, Any] = {"benchmark": "dfo_inference", "source": args.checkpoint or args.config,
                              "dataset": args.dataset, "device": str(device), "machine": machine(), "runs": []}
    for samples in args.samples:
        optimised, reference = policy_pair(args.config, args.checkpoint, samples, args.precision, device,
                                           recorded_frames=bool(args.dataset))
        observations = (recorded_observations(args.dataset, optimised.observation_keys, max(args.quality, 8))
                        if args.dataset else synthetic_observations(optimised, max(args.quality, 8)))
        dfo = optimised.artifacts.config.ebm.dfo
        run = {"samples": dfo.samples, "iterations": dfo.iterations,
               "precision": str(optimised.precision).replace("torch.", "")}
        run.update(time_pair(optimised, reference, observations, args.repeats, args.warmup))
        if args.quality:
            run["quality"] = quality(optimised, reference, observations[:args.quality])
        report["runs"].append(run)
        print(f"samples {run['samples']}: reference p50 {run['reference']['p50_ms']:.1f} ms, optimised "
              f"p50 {run['optimised']['p50_ms']:.1f} ms, ratio {run['ratio_p50']:.3f}", flush=True)
    finish(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
