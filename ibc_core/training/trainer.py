"""Training loop shared by every model kind: in-memory batches, per-sample deterministic
counter-examples (HashedNoise keyed by global batch position), Adam with exponential decay,
periodic atomic checkpoints with resume, TensorBoard scalars, data parallel via torchrun."""
from __future__ import annotations

import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from tqdm import tqdm

from ibc_core.checkpoint import (POLICY_FILE, PolicyArtifacts, artifacts_from_payload, load_weights, read_checkpoint,
                                 save_checkpoint)
from ibc_core.config_io import ConfigError, from_dict, to_dict
from ibc_core.data.episodes import DatasetError
from ibc_core.data.memory import Demonstrations, load_demonstrations
from ibc_core.data.preprocess import ImageSpec
from ibc_core.models.base import PolicyNetwork
from ibc_core.models.encoders import ObservationSpec
from ibc_core.models.explicit import NearestNeighbourNetwork
from ibc_core.normalization import ActionBounds, ObservationStats
from ibc_core.policy import bfloat16_is_fast, resolve_device
from ibc_core.samplers.noise import HashedNoise
from ibc_core.config import AugmentConfig, TrainConfig
from ibc_core.training.distributed import DistContext, average_gradients, init_distributed, shutdown

LAST_CHECKPOINT = "last.pt"


def make_artifacts(cfg: TrainConfig, demos: Demonstrations) -> PolicyArtifacts:
    meta = demos.meta
    env_low = np.asarray(meta["action_low"], np.float32)
    env_high = np.asarray(meta["action_high"], np.float32)
    action_dim = demos.actions.shape[1]
    if env_low.shape != (action_dim,) or env_high.shape != (action_dim,):
        raise DatasetError(f"meta.json action limits have {env_low.shape} values, actions have {action_dim}")
    bounds = ActionBounds.from_data(demos.actions.numpy(), env_low, env_high, cfg.data.action_buffer)
    stats: dict[str, ObservationStats] = {}
    image_spec: Optional[ImageSpec] = None
    if demos.states is not None:
        stats["state"] = ObservationStats.of_states(demos.states.numpy())
    if demos.rgb is not None:
        if "image_spec" not in meta:
            raise DatasetError("dataset has rgb observations but meta.json has no image_spec")
        image_spec = from_dict(ImageSpec, meta["image_spec"])
        if tuple(demos.rgb.shape[1:3]) != (image_spec.height, image_spec.width):
            raise DatasetError(f"rgb frames are {tuple(demos.rgb.shape[1:3])}, image_spec says "
                               f"{image_spec.height}x{image_spec.width}")
        stats["rgb"] = ObservationStats.of_images(demos.rgb.numpy())
    spec = ObservationSpec(history_length=cfg.data.history_length, action_dim=action_dim,
                           state_dim=demos.states.shape[1] if demos.states is not None else None,
                           image_hw=(image_spec.height, image_spec.width) if image_spec else None)
    memory = len(demos) if cfg.model.kind == "nn" else 0
    return PolicyArtifacts(cfg, spec, image_spec, stats, bounds, str(meta.get("task", "")), memory)


def augment_images(rgb: torch.Tensor, cfg: AugmentConfig, noise: HashedNoise) -> torch.Tensor:
    """Random translation (replicate padding) and brightness, per sample: [B, T, H, W, 3] uint8."""
    batch, _, height, width, _ = rgb.shape
    if cfg.shift_pixels > 0:
        shifts = (noise.uniform(batch, 2) * (2 * cfg.shift_pixels + 1)).floor().long() - cfg.shift_pixels
        shifts = shifts.to(rgb.device)
        rows = (torch.arange(height, device=rgb.device)[None] + shifts[:, :1]).clamp(0, height - 1)
        cols = (torch.arange(width, device=rgb.device)[None] + shifts[:, 1:]).clamp(0, width - 1)
        batch_index = torch.arange(batch, device=rgb.device)[:, None, None]
        rgb = rgb[batch_index, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2, 4)
    if cfg.brightness > 0:
        scale = 1.0 + (noise.uniform(batch, 1) * 2.0 - 1.0) * cfg.brightness
        rgb = (rgb.float() * scale.to(rgb.device).view(batch, 1, 1, 1, 1)).clamp(0, 255).round().to(torch.uint8)
    return rgb


class TrainingInterrupted(Exception):
    """Ctrl-C ended training after a whole step; that step is saved in `checkpoint`."""

    def __init__(self, step: int, checkpoint: Path):
        super().__init__(f"interrupted after step {step}; saved {checkpoint}")
        self.step, self.checkpoint = step, checkpoint


class _InterruptRequest:
    """While active, Ctrl-C (SIGINT) asks training to stop after the step in progress: a step
    cut short could leave the weights half-updated by the optimiser. A second Ctrl-C stops at
    once. Only the main thread can handle signals; elsewhere Ctrl-C keeps its usual effect."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> "_InterruptRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after this step and saving (Ctrl-C again to abort without saving)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc_info: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def training_precision(precision: str, device: torch.device, fast_bfloat16: Optional[bool] = None) -> torch.dtype:
    """Autocast dtype of the training forward pass. "auto": bfloat16 where it is fast (CUDA, CPUs
    with AMX / AVX512-BF16), else float32. An explicit "bfloat16" on a CPU without it still
    trains (bfloat16 is emulated there) but warns: on a 2-core AVX2 CPU it ran ~10x slower than
    float32. fast_bfloat16: this CPU's answer (None: read it from /proc/cpuinfo)."""
    fast = bfloat16_is_fast(device) if fast_bfloat16 is None or device.type == "cuda" else fast_bfloat16
    if precision == "auto":
        return torch.bfloat16 if fast else torch.float32
    if precision == "bfloat16" and not fast:
        warnings.warn("optim.precision=bfloat16 on a CPU without AVX512-BF16 or AMX: bfloat16 is emulated here "
                      "and training runs several times slower than in float32 (measured ~10x on an AVX2 CPU); "
                      "optim.precision=auto picks float32 here", RuntimeWarning, stacklevel=2)
    return torch.bfloat16 if precision == "bfloat16" else torch.float32


class _TrainingLog:
    """Progress-bar postfix and TensorBoard scalars (writer is None off the main process)."""

    def __init__(self, writer: Any, start_step: int):
        self.writer = writer
        self.tick, self.tick_step = time.perf_counter(), start_step

    def record(self, step: int, loss: float, lr: float, metrics: dict[str, float]) -> dict[str, str]:
        rate = (step - self.tick_step) / max(time.perf_counter() - self.tick, 1e-9)
        self.tick, self.tick_step = time.perf_counter(), step
        if self.writer is not None:
            for name, value in {"loss": loss, "lr": lr, "steps_per_s": rate, **metrics}.items():
                self.writer.add_scalar(f"train/{name}", value, step)
        return {"loss": f"{loss:.4f}", "lr": f"{lr:.2e}", "steps_s": f"{rate:.2f}"}

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool = False):
        self.cfg = cfg
        self.resume = resume
        self.device = resolve_device(cfg.run.device)
        self.ctx: DistContext = init_distributed(self.device.type)
        if self.ctx.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.ctx.local_rank)
        if cfg.optim.batch_size % self.ctx.world_size:
            raise ConfigError(f"optim.batch_size {cfg.optim.batch_size} is not divisible by "
                              f"{self.ctx.world_size} processes")
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        torch.manual_seed(cfg.run.seed)
        self.out_dir = Path(cfg.run.out_dir)
        self.autocast_dtype = training_precision(cfg.optim.precision, self.device)

    # ----- public -----
    def run(self, demos: Optional[Demonstrations] = None) -> Path:
        """Trains and returns the path of the exported policy (out_dir/policy.pt)."""
        try:
            demos = demos or self._load_data()
            artifacts = make_artifacts(self.cfg, demos)
            network = artifacts.build().to(self.device)
            if isinstance(network, NearestNeighbourNetwork):
                return self._fit_nearest_neighbour(network, artifacts, demos)
            return self._train(network, artifacts, demos)
        finally:
            shutdown(self.ctx)

    # ----- internals -----
    def _load_data(self) -> Demonstrations:
        data = self.cfg.data
        if not data.path:
            raise ConfigError("data.path is required (a dataset directory written by ibc-data)")
        return load_demonstrations(data.path, data.history_length, data.successful_only, data.max_episodes,
                                   progress=self.cfg.run.progress and self.ctx.is_main,
                                   observation_keys=data.observation_keys)

    def _fit_nearest_neighbour(self, network: NearestNeighbourNetwork, artifacts: PolicyArtifacts,
                               demos: Demonstrations) -> Path:
        with torch.no_grad():
            chunks = [network.features(self._to_device(demos.observations(rows)))
                      for rows in torch.arange(len(demos)).split(1024)]
            actions = artifacts.bounds.normalize(demos.actions.to(self.device))
            network.memorize(torch.cat(chunks), actions)
        return self._export(network, artifacts, step=0)

    def _train(self, network: PolicyNetwork, artifacts: PolicyArtifacts, demos: Demonstrations) -> Path:
        cfg = self.cfg
        optimizer = torch.optim.Adam(network.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: cfg.optim.lr_decay ** (step / cfg.optim.lr_decay_steps))
        start = self._maybe_resume(network, artifacts, optimizer, scheduler)
        save = lambda step: self._checkpoint(network, artifacts, optimizer, scheduler, step)  # noqa: E731
        log = _TrainingLog(self._tensorboard(), start)
        bar = tqdm(range(start, cfg.optim.steps), initial=start, total=cfg.optim.steps, desc="train",
                   disable=not (cfg.run.progress and self.ctx.is_main), dynamic_ncols=True)
        network.train()
        try:
            with _InterruptRequest() as interrupt:
                last = self._steps(network, optimizer, scheduler, demos, artifacts, bar, log, save, interrupt)
        finally:
            bar.close()
            log.close()
        save(last)
        network.eval()
        return self._export(network, artifacts, last)

    def _steps(self, network, optimizer, scheduler, demos: Demonstrations, artifacts: PolicyArtifacts, bar, log,
               save, interrupt: "_InterruptRequest") -> int:
        """The training steps; returns the last one done (below optim.steps when run.max_seconds
        ran out). Ctrl-C saves after the step in progress and raises TrainingInterrupted."""
        cfg = self.cfg
        actions = artifacts.bounds.normalize(demos.actions)
        local = cfg.optim.batch_size // self.ctx.world_size
        positions = torch.arange(self.ctx.rank * local, (self.ctx.rank + 1) * local)
        deadline = time.monotonic() + cfg.run.max_seconds if cfg.run.max_seconds else None
        for step in bar:
            rows = self._global_batch(step, len(demos))[positions]
            # Counter-examples etc. keyed by the global batch position: same draws for any process count.
            noise = HashedNoise(cfg.run.seed, step, positions.to(self.device))
            loss, metrics = self._step(network, demos.observations(rows), actions[rows], noise)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            average_gradients(network.parameters(), self.ctx)
            optimizer.step()
            scheduler.step()
            done = step + 1
            if done % cfg.run.log_every == 0 or done == cfg.optim.steps:
                bar.set_postfix(log.record(done, loss.item(), scheduler.get_last_lr()[0], metrics))
            if done % cfg.run.checkpoint_every == 0 and done < cfg.optim.steps:
                save(done)
            if interrupt.requested:
                save(done)
                raise TrainingInterrupted(done, self.out_dir / "checkpoints" / LAST_CHECKPOINT)
            if deadline is not None and done < cfg.optim.steps and time.monotonic() >= deadline:
                bar.write(f"run.max_seconds={cfg.run.max_seconds:g} reached at step {done} of {cfg.optim.steps}: "
                          f"saved (optim.steps={done} reproduces this run; --resume continues it)")
                return done
        return cfg.optim.steps

    def _step(self, network: PolicyNetwork, obs: dict[str, torch.Tensor], actions: torch.Tensor,
              noise: HashedNoise) -> tuple[torch.Tensor, dict[str, float]]:
        if "rgb" in obs:
            obs["rgb"] = augment_images(obs["rgb"], self.cfg.data.augment, noise)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype,
                            enabled=self.autocast_dtype != torch.float32):
            features = network.features(self._to_device(obs))
            loss, metrics = network.loss(features, actions.to(self.device), noise)
        return loss.float(), metrics

    def _global_batch(self, step: int, size: int) -> torch.Tensor:
        # Same indices in every process: a generator seeded by (seed, step).
        generator = torch.Generator().manual_seed(self.cfg.run.seed * 1_000_003 + step)
        return torch.randint(size, (self.cfg.optim.batch_size,), generator=generator)

    def _to_device(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device, non_blocking=True) for k, v in obs.items()}

    def _tensorboard(self) -> Any:
        if not self.ctx.is_main:
            return None
        from torch.utils.tensorboard import SummaryWriter  # slow import; only the main process logs
        return SummaryWriter(str(self.out_dir / "tensorboard"))

    def _checkpoint(self, network, artifacts, optimizer, scheduler, step: int) -> None:
        if not self.ctx.is_main:
            return
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "torch_rng": torch.get_rng_state()}  # dropout draws from torch's global generator
        directory = self.out_dir / "checkpoints"
        save_checkpoint(directory / f"step_{step:08d}.pt", network, artifacts, step, state)
        save_checkpoint(directory / LAST_CHECKPOINT, network, artifacts, step, state)
        for old in sorted(directory.glob("step_*.pt"))[:-self.cfg.run.keep_checkpoints]:
            old.unlink()

    def _export(self, network, artifacts, step: int) -> Path:
        path = self.out_dir / POLICY_FILE
        if self.ctx.is_main:
            save_checkpoint(path, network, artifacts, step)
        return path

    def _maybe_resume(self, network, artifacts, optimizer, scheduler) -> int:
        path = self.out_dir / "checkpoints" / LAST_CHECKPOINT
        if not self.resume:
            return 0
        if not path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {path}")
        payload = read_checkpoint(path)
        stored = artifacts_from_payload(payload, path)
        for section in ("model", "ebm"):
            if to_dict(getattr(stored.config, section)) != to_dict(getattr(self.cfg, section)):
                raise ConfigError(f"--resume: {section} differs from the checkpoint's ({path})")
        if stored.spec != artifacts.spec:
            raise ConfigError(f"--resume: dataset/observation spec {artifacts.spec} differs from {stored.spec}")
        load_weights(network, payload["weights"], path)
        if "training_state" not in payload:
            raise ConfigError(f"--resume: {path} has no training state")
        optimizer.load_state_dict(payload["training_state"]["optimizer"])
        scheduler.load_state_dict(payload["training_state"]["scheduler"])
        torch.set_rng_state(payload["training_state"]["torch_rng"])  # dropout masks continue exactly
        return int(payload["step"])
