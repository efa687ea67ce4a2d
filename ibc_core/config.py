"""Training / model / inference configuration (config/train_*.yaml), defaults from appendix D.2.

The model, ebm and data.history_length sections are stored in every checkpoint: they rebuild
the exact network and its inference procedure.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Optional


def _require(condition: bool, field_name: str, rule: str, value: Any) -> None:
    # config_io prefixes the section path, so the message reads "optim: lr must be > 0, got -1".
    if not condition:
        raise ValueError(f"{field_name} {rule}, got {value!r}")


@dataclass
class AugmentConfig:
    shift_pixels: int = 0        # random image translation (replicate padding), 0 = off
    brightness: float = 0.0      # random brightness scale in [1 - b, 1 + b], 0 = off

    def validate(self) -> None:
        _require(self.shift_pixels >= 0, "shift_pixels", "must be >= 0", self.shift_pixels)
        _require(0.0 <= self.brightness < 1.0, "brightness", "must be in [0, 1)", self.brightness)


@dataclass
class DataConfig:
    path: str = ""                       # dataset directory (meta.json + episodes/)
    observation_keys: Optional[list[str]] = None  # policy inputs among the dataset's; null = all
    history_length: int = 2              # observation sequence length
    action_buffer: float = 0.05          # widen data min/max by this fraction on each side
    successful_only: bool = True         # train on successful demonstrations only
    max_episodes: Optional[int] = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self) -> None:
        _require(self.observation_keys is None or (bool(self.observation_keys)
                 and set(self.observation_keys) <= {"state", "rgb"}), "observation_keys",
                 "must be null or a non-empty subset of [state, rgb]", self.observation_keys)
        _require(self.history_length >= 1, "history_length", "must be >= 1", self.history_length)
        _require(0.0 <= self.action_buffer < 1.0, "action_buffer", "must be in [0, 1)", self.action_buffer)
        _require(self.max_episodes is None or self.max_episodes >= 1, "max_episodes", "must be >= 1",
                 self.max_episodes)


@dataclass
class EncoderConfig:
    channels: tuple[int, ...] = (32, 64, 128, 256)   # ConvMaxPool: 3x3 conv + 2x2 max-pool each
    pooling: Literal["avg", "spatial_softmax"] = "avg"
    coordconv: bool = False

    def validate(self) -> None:
        _require(bool(self.channels) and min(self.channels) >= 1, "channels", "must be positive", self.channels)


@dataclass
class MLPConfig:
    width: int = 128
    depth: int = 8                       # hidden dense layers
    resnet: bool = False                 # dense ResNet: hidden layers in pre-activation pairs
    spectral_norm: bool = False
    activation: Literal["relu", "swish"] = "relu"
    dropout: float = 0.0

    def validate(self) -> None:
        _require(self.width >= 1, "width", "must be >= 1", self.width)
        _require(self.depth >= 1, "depth", "must be >= 1", self.depth)
        _require(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)", self.dropout)


@dataclass
class MDNConfig:
    components: int = 8
    train_temperature: float = 1.0       # mixture logits are divided by it in the NLL
    test_temperature: float = 1.0        # ... and at inference ("mode" is unaffected: argmax of logits)
    test_variance_exponent: float = 1.0  # "sample" mode: std ** exponent shrinks sampling noise
    # mode: mean of the most likely component; mean: the mixture's expectation; sample: a draw
    inference: Literal["mode", "mean", "sample"] = "mode"

    def validate(self) -> None:
        _require(self.components >= 1, "components", "must be >= 1", self.components)
        _require(self.train_temperature > 0, "train_temperature", "must be > 0", self.train_temperature)
        _require(self.test_temperature > 0, "test_temperature", "must be > 0", self.test_temperature)


@dataclass
class NearestNeighbourConfig:
    projection_dim: int = 128            # images: random linear projection (appendix C.4)
    projection_seed: int = 0


@dataclass
class ModelConfig:
    kind: Literal["ebm", "mse", "mdn", "nn", "irvs"] = "ebm"   # irvs: ibc_core.irvs (config section irvs)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    mlp: MLPConfig = field(default_factory=MLPConfig)
    mdn: MDNConfig = field(default_factory=MDNConfig)
    nn: NearestNeighbourConfig = field(default_factory=NearestNeighbourConfig)


@dataclass
class DFOConfig:
    samples: int = 16384                 # per action dimension for the autoregressive sampler
    iterations: int = 3
    sigma_init: float = 0.33
    shrink: float = 0.5                  # K

    def validate(self) -> None:
        _require(self.samples >= 1, "samples", "must be >= 1", self.samples)
        _require(self.iterations >= 1, "iterations", "must be >= 1", self.iterations)
        _require(self.sigma_init >= 0, "sigma_init", "must be >= 0", self.sigma_init)
        _require(0 < self.shrink <= 1, "shrink", "must be in (0, 1]", self.shrink)


@dataclass
class LangevinConfig:
    iterations: int = 50
    step_init: float = 0.1
    step_final: float = 1e-5
    power: float = 2.0                   # polynomial step-size decay
    delta_clip: Optional[float] = 0.1    # clip on the full step, as a fraction of half the range
    noise_scale: float = 1.0
    update: Literal["ibc", "correct"] = "ibc"   # paper's eq. 6 or true Langevin eq. 8
    inference_samples: int = 512
    second_chain: bool = True            # inference: a second chain from the first one's end
    second_chain_step_init: Optional[float] = None  # None: same schedule as the first chain

    def validate(self) -> None:
        _require(self.iterations >= 1, "iterations", "must be >= 1", self.iterations)
        _require(self.step_init > 0, "step_init", "must be > 0", self.step_init)
        _require(self.step_final >= 0, "step_final", "must be >= 0", self.step_final)
        _require(self.inference_samples >= 1, "inference_samples", "must be >= 1", self.inference_samples)
        _require(self.delta_clip is None or self.delta_clip > 0, "delta_clip", "must be > 0 or null",
                 self.delta_clip)


@dataclass
class GradientPenaltyConfig:
    enabled: bool = False
    margin: float = 1.0                  # M
    weight: float = 1.0


@dataclass
class MarginalSamplerConfig:
    """Marginal action sampler (ebm_theory_vs_practice, section V): a small EBM p(y) over actions
    alone, trained alongside by the max-entropy loss (its appendix A) on its own Langevin samples,
    which become the conditional EBM's InfoNCE counter-examples (independent draws of p(y))."""
    enabled: bool = False
    width: int = 64
    depth: int = 2
    entropy_weight: float = 1.0          # weight of 1/2 Var[E(negatives)] in the marginal's loss
    positive_l2: float = 0.1             # anchors the positives' energies towards zero
    langevin: LangevinConfig = field(default_factory=lambda: LangevinConfig(
        iterations=10, step_init=1.0, step_final=1e-3, delta_clip=0.25, update="correct"))

    def validate(self) -> None:
        _require(self.width >= 1 and self.depth >= 1, "width/depth", "must be >= 1", (self.width, self.depth))
        _require(self.entropy_weight >= 0, "entropy_weight", "must be >= 0", self.entropy_weight)
        _require(self.positive_l2 >= 0, "positive_l2", "must be >= 0", self.positive_l2)


@dataclass
class EBMConfig:
    sampler: Literal["dfo", "autoregressive", "langevin"] = "dfo"
    counter_examples: int = 256          # per sample (per action dimension when autoregressive)
    dfo: DFOConfig = field(default_factory=DFOConfig)
    autoregressive_train_iterations: int = 1   # Algorithm 2 iterations run while training
    langevin: LangevinConfig = field(default_factory=LangevinConfig)
    gradient_penalty: GradientPenaltyConfig = field(default_factory=GradientPenaltyConfig)
    # Maximum-entropy regulariser (ebm_theory_vs_practice, section IV / appendix A): adds
    # weight * 1/2 Var over counter-examples of E(x, y~) to InfoNCE. 0 = off.
    max_entropy_weight: float = 0.0
    marginal: MarginalSamplerConfig = field(default_factory=MarginalSamplerConfig)

    def validate(self) -> None:
        _require(self.max_entropy_weight >= 0, "max_entropy_weight", "must be >= 0", self.max_entropy_weight)
        _require(self.counter_examples >= 1, "counter_examples", "must be >= 1", self.counter_examples)
        _require(self.autoregressive_train_iterations >= 1, "autoregressive_train_iterations", "must be >= 1",
                 self.autoregressive_train_iterations)


@dataclass
class IRvSConfig:
    """Implicit RL via supervised learning (Piche et al. 2022; model.kind: irvs): an energy over
    (action, return) given the observation. Returns are normalised to [-1, 1] over the dataset's
    range; inference minimises E(s, a, G) - inverse_eta * G over (a, G)."""
    inverse_eta: float = 1.0             # 1/eta; 0 = the joint's mode (IBC-like), large = best return
    discount: float = 0.98               # return-to-go at step t = reward * discount ** (T - 1 - t)
    return_buffer: float = 0.05          # like data.action_buffer: the data's returns span the
                                         # middle of [-1, 1], so no mode sits on the sampling edge
    return_grid: int = 64                # returns tried per action by energy_grid / energies

    def validate(self) -> None:
        _require(self.inverse_eta >= 0, "inverse_eta", "must be >= 0", self.inverse_eta)
        _require(0 < self.discount <= 1, "discount", "must be in (0, 1]", self.discount)
        _require(self.return_grid >= 2, "return_grid", "must be >= 2", self.return_grid)
        _require(0 <= self.return_buffer < 1, "return_buffer", "must be in [0, 1)", self.return_buffer)


@dataclass
class OptimConfig:
    batch_size: int = 512                # global batch (split across data-parallel processes)
    steps: int = 10000
    lr: float = 1e-3
    lr_decay: float = 0.99
    lr_decay_steps: int = 100
    weight_decay: float = 0.0
    # Mixed precision: "bfloat16" autocasts the forward pass (weights, optimizer and loss
    # reduction stay float32); ~1.6-2x faster on CPUs with AMX/AVX512-BF16 and on GPUs.
    # "auto" picks bfloat16 where it is fast, like Policy's inference precision.
    precision: str = "float32"

    def validate(self) -> None:
        _require(self.precision in ("float32", "bfloat16", "auto"), "precision",
                 "must be float32, bfloat16 or auto", self.precision)
        _require(self.batch_size >= 1, "batch_size", "must be >= 1", self.batch_size)
        _require(self.steps >= 0, "steps", "must be >= 0", self.steps)
        _require(self.lr > 0, "lr", "must be > 0", self.lr)
        _require(0 < self.lr_decay <= 1, "lr_decay", "must be in (0, 1]", self.lr_decay)
        _require(self.lr_decay_steps >= 1, "lr_decay_steps", "must be >= 1", self.lr_decay_steps)


@dataclass
class RunConfig:
    out_dir: str = "runs/ibc"
    seed: int = 0
    device: str = "auto"                 # auto | cpu | cuda | cuda:N
    threads: int = 0                     # torch CPU threads; 0 keeps torch's default
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 50
    progress: bool = True
    # Wall-clock budget in seconds (0: none). When it runs out, training stops after the current
    # step and saves/exports as at the end; the learning rate depends on the step alone, so
    # optim.steps=<the step reached> reproduces the run, and --resume continues it.
    max_seconds: float = 0.0

    def validate(self) -> None:
        for name in ("checkpoint_every", "log_every", "keep_checkpoints"):
            _require(getattr(self, name) >= 1, name, "must be >= 1", getattr(self, name))
        _require(self.threads >= 0, "threads", "must be >= 0", self.threads)
        _require(math.isfinite(self.max_seconds) and self.max_seconds >= 0, "max_seconds",
                 "must be a finite number >= 0 (0: no limit)", self.max_seconds)


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    ebm: EBMConfig = field(default_factory=EBMConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    irvs: IRvSConfig = field(default_factory=IRvSConfig)

    def validate(self) -> None:
        _require(self.model.kind != "irvs" or self.ebm.sampler in ("dfo", "langevin"), "ebm.sampler",
                 "must be dfo or langevin for model.kind irvs", self.ebm.sampler)
