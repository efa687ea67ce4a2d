"""ibc-bench: latency and throughput of named policy configurations (random weights, real
shapes; no dataset needed).

    ibc-bench inference --config paper_real --device cpu       # act() latency percentiles
    ibc-bench inference --config push_pixels --device cuda --iterations 500
    ibc-bench inference --checkpoint runs/push_pixels/policy.pt
    ibc-bench train --config push_pixels --iterations 20       # training steps/s
    ibc-bench inference --config push_states ebm.dfo.samples=4096 ebm.dfo.iterations=2   # overrides

Named configs: paper_real (appendix D.5 / C.2: 2 frames 90x120, ConvMaxPool 32/64/128/256,
1024x4 MLP, DFO 1024 samples x 3 iterations; paper: 7.22 ms on an RTX 2080 Ti),
paper_real_2048 (9.25 ms), paper_real_mse (explicit, 3.49 ms), and the shipped training
configs push_pixels, push_states, push_multi_states, particle (config/train_*.yaml).
act() latency includes image preprocessing of a 640x360 frame.

Overrides: KEY=VALUE words, as ibc-train takes them (the key a field of the training config:
model.mlp.width=512); with --checkpoint they change its inference settings (ebm.dfo.samples=4096).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import yaml

from ibc_core.checkpoint import CheckpointError, PolicyArtifacts
from ibc_cli.common import TRAINING, add_override_words, parse_command_line, parse_overrides
from ibc_cli.train import resolve_config
from ibc_core.config_io import ConfigError, load_config
from ibc_core.data.preprocess import ImageSpec
from ibc_core.models.encoders import ObservationSpec
from ibc_core.normalization import ActionBounds, ObservationStats
from ibc_core.policy import Policy, resolve_device
from ibc_core.samplers.noise import HashedNoise
from ibc_core.config import TrainConfig

PAPER_REAL = ["model.encoder.channels=[32,64,128,256]", "model.mlp.width=1024", "model.mlp.depth=4",
              "model.mlp.resnet=false", "ebm.sampler=dfo", "ebm.dfo.samples=1024", "ebm.dfo.iterations=3",
              "optim.batch_size=128", "ebm.counter_examples=256"]
# name -> (config file or None, overrides, observation layout)
NAMED = {
    "paper_real": (None, PAPER_REAL, {"image": (90, 120)}),
    "paper_real_2048": (None, PAPER_REAL + ["ebm.dfo.samples=2048"], {"image": (90, 120)}),
    "paper_real_mse": (None, PAPER_REAL + ["model.kind=mse"], {"image": (90, 120)}),
    "push_pixels": ("train_push_pixels", [], {"image": "sim_push_pixels"}),
    "push_states": ("train_push_states", [], {"state": 10}),
    "push_multi_states": ("train_push_multi_states", [], {"state": 13}),   # 10-D + target 2 pose
    "particle": ("train_particle", [], {"state": 8, "action": 2}),
}
FRAME_HW = (360, 640)


def task_image_size(task_config: str) -> tuple[int, int]:
    """The policy input size a sim task's config (config/sim_*.yaml) generates data at."""
    spec = yaml.safe_load(resolve_config(task_config).read_text()).get("image_spec", {})
    return int(spec.get("height", ImageSpec().height)), int(spec.get("width", ImageSpec().width))


def named_artifacts(name: str, overrides: Sequence[str]) -> PolicyArtifacts:
    if name not in NAMED:
        raise ConfigError(f"unknown config {name!r}; named configs: {', '.join(NAMED)}")
    source, extra, layout = NAMED[name]
    cfg = load_config(TrainConfig, resolve_config(source) if source else None, [*extra, *overrides])
    action_dim = layout.get("action", 2)
    image_hw = layout.get("image")
    if isinstance(image_hw, str):
        image_hw = task_image_size(image_hw)
    spec = ObservationSpec(history_length=cfg.data.history_length, action_dim=action_dim,
                           state_dim=layout.get("state"), image_hw=image_hw)
    stats = {}
    if spec.state_dim:
        stats["state"] = ObservationStats(np.zeros(spec.state_dim, np.float32), np.ones(spec.state_dim, np.float32))
    if image_hw:
        stats["rgb"] = ObservationStats(np.full(3, 0.5, np.float32), np.full(3, 0.25, np.float32))
    bounds = ActionBounds(np.full(action_dim, -0.1, np.float32), np.full(action_dim, 0.1, np.float32))
    image_spec = ImageSpec(height=image_hw[0], width=image_hw[1]) if image_hw else None
    return PolicyArtifacts(cfg, spec, image_spec, stats, bounds, task=f"bench:{name}")


def random_observation(policy: Policy, rng: np.random.Generator) -> dict[str, np.ndarray]:
    obs = {}
    if "state" in policy.observation_keys:
        obs["state"] = rng.normal(size=policy.artifacts.spec.state_dim).astype(np.float32)
    if "rgb" in policy.observation_keys:
        obs["rgb"] = rng.integers(0, 256, (*FRAME_HW, 3), dtype=np.uint8)
    return obs


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"mean_ms": float(ms.mean()), "p50_ms": float(np.percentile(ms, 50)),
            "p90_ms": float(np.percentile(ms, 90)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max())}


def timed(fn: Callable[[], object], iterations: int, warmup: int, device: torch.device) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iterations):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def bench_inference(policy: Policy, iterations: int, warmup: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    observations = [random_observation(policy, rng) for _ in range(8)]
    counter = iter(range(10 ** 9))
    return percentiles(timed(lambda: policy.act(observations[next(counter) % 8]), iterations, warmup,
                             policy.device))


def random_training_batch(spec: ObservationSpec, batch: int, device: torch.device | str = "cpu",
                          generator: torch.Generator | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A training batch of spec's shapes: N(0, 1) states, uint8 frames, actions uniform in
    [-1, 1) (normalised). Drawn from `generator`, or torch's global RNG when None."""
    obs = {}
    if spec.state_dim:
        obs["state"] = torch.randn(batch, spec.history_length, spec.state_dim, device=device, generator=generator)
    if spec.image_hw:
        obs["rgb"] = torch.randint(0, 256, (batch, spec.history_length, *spec.image_hw, 3),
                                   dtype=torch.uint8, device=device, generator=generator)
    return obs, torch.rand(batch, spec.action_dim, device=device, generator=generator) * 2 - 1


def bench_training(artifacts: PolicyArtifacts, device: torch.device, steps: int, warmup: int) -> dict[str, float]:
    """Steps/s of the training step (forward, loss with counter-examples, backward, Adam) on
    random data of the configured shapes."""
    cfg = artifacts.config
    network = artifacts.build().to(device).train()
    optimizer = torch.optim.Adam(network.parameters(), lr=cfg.optim.lr)
    batch = cfg.optim.batch_size
    obs, actions = random_training_batch(artifacts.spec, batch, device)
    step = iter(range(10 ** 9))

    def train_step() -> None:
        loss, _ = network.loss(network.features(obs), actions, HashedNoise(0, next(step), torch.arange(batch, device=device)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    times = timed(train_step, steps, warmup, device)
    return {"steps_per_s": float(1.0 / np.mean(times)), **percentiles(times)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="ibc-bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("what", choices=["inference", "train"])
    parser.add_argument("--config", default="paper_real", help=f"one of {', '.join(NAMED)}")
    parser.add_argument("--checkpoint", help="benchmark a trained policy file instead of a named config")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    parser.add_argument("--iterations", type=int, default=100, help="timed act() calls / training steps")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    parser.add_argument("--json", help="also write the result to this JSON file")
    add_override_words(parser, "overrides of the named config (or the checkpoint's inference settings), "
                               "e.g. ebm.dfo.samples=4096", old={"--set": ""})
    args = parse_command_line(parser, argv)
    try:
        overrides = parse_overrides(args.words, TRAINING)[""]
        if args.threads:
            torch.set_num_threads(args.threads)
        device = resolve_device(args.device)
        if args.checkpoint:
            policy = Policy.load(args.checkpoint, device, overrides=overrides)
            artifacts, label = policy.artifacts, args.checkpoint
        else:
            artifacts, label = named_artifacts(args.config, overrides), args.config
            policy = Policy(artifacts.build(), artifacts, device)
        if args.what == "inference":
            result = bench_inference(policy, args.iterations, args.warmup)
        else:
            result = bench_training(artifacts, device, args.iterations, args.warmup)
    except (ConfigError, CheckpointError, ValueError) as exc:
        print(f"ibc-bench: error: {exc}", file=sys.stderr)
        return 2
    report = {"benchmark": args.what, "config": label, "overrides": overrides, "device": str(device),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "threads": torch.get_num_threads(), "torch": torch.__version__, **result}
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
