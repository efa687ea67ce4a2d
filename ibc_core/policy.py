"""Run a trained policy (implicit EBM or explicit baseline) one observation at a time.

    from ibc_core.policy import Policy
    policy = Policy.load("policies/push_pixels.pt", device="auto")   # cuda if available
    # optional: Policy.load(path, overrides=["ebm.dfo.samples=4096"]) changes inference settings
    policy.reset()                                   # new episode: clears the observation history
    action = policy.act({"rgb": camera_frame})       # raw uint8 HxWx3 frame, any size
    action = policy.act({"state": state_vector})     # state policies: float32 [S]
    actions = policy.act_batch(histories)            # [B, action_dim]: B episodes in one call
    xs, ys, energies = policy.energy_grid(None)      # 2-D EBMs: energies [res, res] for the
                                                     # history the last act() used (rows = y)

act() returns float32 [action_dim] in environment units (delta setpoint, metres), inside
policy.action_low..action_high. Images go through ibc_core.data.preprocess with the policy's
own image_spec. At the start of an episode the history is padded by repeating the first
observation. Inference randomness comes from a generator reseeded at reset(), so the same
checkpoint and observations give the same actions.

precision (EBMs with DFO): "float32" runs every energy in float32; "bfloat16" runs the DFO
search in bfloat16 and re-scores the 16 lowest final samples in float32 to choose the action
(about 3x faster on CPUs with AMX / AVX512-BF16, see docs/BENCHMARKS.md); "int8" does the
same with a dynamically quantised int8 copy of the dense layers (CPU only, FBGEMM: for AVX2
CPUs without fast bfloat16); "auto" (default) picks bfloat16 on CUDA and on CPUs with fast
bfloat16, int8 on other x86 CPUs that have FBGEMM, else float32.
"""
from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from ibc_core.checkpoint import CheckpointError, PolicyArtifacts, load_checkpoint
from ibc_core.config_io import to_dict
from ibc_core.data.preprocess import ImageSpec, preprocess_image
from ibc_core.models.base import PolicyNetwork
from ibc_core.models.energy import EnergyNetwork
from ibc_core.models.mlp import int8_linear_available
from ibc_core.samplers.noise import GeneratorNoise

__all__ = ["Policy", "CheckpointError", "resolve_device", "resolve_precision"]

Observation = Mapping[str, np.ndarray]
PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16, "int8": torch.qint8}


def cpu_has_fast_bfloat16() -> bool:
    """AMX or AVX512-BF16: bfloat16 matrix products run natively (elsewhere they are emulated
    and slower than float32)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def bfloat16_is_fast(device: torch.device) -> bool:
    """bfloat16 runs natively here: any CUDA device, or a CPU with AVX512-BF16 / AMX."""
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bfloat16())


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    if precision == "auto":
        if bfloat16_is_fast(device):
            return torch.bfloat16
        return torch.qint8 if device.type == "cpu" and int8_linear_available() else torch.float32
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be auto, {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "int8" and (device.type != "cpu" or not int8_linear_available()):
        raise ValueError(f"precision int8 needs a CPU with FBGEMM int8 kernels (x86), not {device}")
    return PRECISIONS[precision]


def resolve_device(device: Union[str, torch.device]) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return resolved


class Policy:
    def __init__(self, network: PolicyNetwork, artifacts: PolicyArtifacts, device: torch.device,
                 precision: str = "auto"):
        self.network = network.to(device).eval()
        self.precision = resolve_precision(precision, device)
        if isinstance(network, EnergyNetwork):
            network.inference_dtype = self.precision
        self.artifacts = artifacts
        self.device = device
        self._seed = artifacts.config.run.seed
        self._generator = torch.Generator(device=device)
        self._history: deque[dict[str, np.ndarray]] = deque(maxlen=artifacts.spec.history_length)
        self._last_history: Optional[list[dict[str, np.ndarray]]] = None
        self.reset()

    @classmethod
    def load(cls, path: Union[str, Path], device: Union[str, torch.device] = "auto",
             overrides: Sequence[str] = (), precision: str = "auto") -> "Policy":
        """Rebuilds the exact policy from a checkpoint; CheckpointError says what is wrong.
        overrides (optional) change inference settings, e.g. ["ebm.dfo.samples=4096"];
        precision: see the module docstring."""
        resolved = resolve_device(device)
        network, artifacts, _ = load_checkpoint(path, resolved, overrides)
        return cls(network, artifacts, resolved, precision)

    # ----- contract properties -----
    @property
    def observation_keys(self) -> tuple[str, ...]:
        return self.artifacts.spec.keys

    @property
    def image_spec(self) -> Optional[ImageSpec]:
        return self.artifacts.image_spec

    @property
    def history_length(self) -> int:
        return self.artifacts.spec.history_length

    @property
    def action_dim(self) -> int:
        return self.artifacts.spec.action_dim

    @property
    def action_low(self) -> np.ndarray:
        return self.artifacts.bounds.low.copy()

    @property
    def action_high(self) -> np.ndarray:
        return self.artifacts.bounds.high.copy()

    @property
    def task(self) -> str:
        """The task of the dataset it was trained on ('' for a checkpoint that does not know)."""
        return self.artifacts.task

    def check_task(self, task: str) -> None:
        """ValueError unless the policy was trained for `task` (one that does not know passes)."""
        if self.task and self.task != task:
            raise ValueError(f"trained for task {self.task!r}, not {task!r}")

    @property
    def config(self) -> dict[str, Any]:
        """Full model + inference configuration as stored in the checkpoint."""
        return {**to_dict(self.artifacts.config), "task": self.artifacts.task,
                "observation_keys": list(self.observation_keys),
                "image_spec": to_dict(self.image_spec) if self.image_spec else None,
                "action_dim": self.action_dim, "state_dim": self.artifacts.spec.state_dim}

    # ----- acting -----
    def reset(self) -> None:
        self._history.clear()
        self._last_history = None
        self._generator.manual_seed(self._seed)

    def act(self, obs: Observation) -> np.ndarray:
        self._history.append(self._prepare(obs))
        history = self._padded(list(self._history))
        self._last_history = history
        return self._predict([history])[0]

    def act_batch(self, histories: Sequence[Sequence[Observation]]) -> np.ndarray:
        """Actions [B, action_dim] for B independent episodes in one network call (lock-step
        evaluation, where a GPU pays per call rather than per sample). histories[b] is episode
        b's observations so far, oldest first; the last history_length are used, padded as act()
        pads. The policy's own history is left alone. Inference noise comes from the policy's
        generator (reseeded by reset() only), so an EBM's action for an episode depends on the
        batch it runs in; an explicit model acts exactly as act() would."""
        if not histories or any(len(history) == 0 for history in histories):
            raise ValueError("act_batch needs at least one episode, each with at least one observation")
        prepared = [self._padded([self._prepare(obs) for obs in history[-self.history_length:]])
                    for history in histories]
        return self._predict(prepared)

    def _predict(self, histories: list[list[dict[str, np.ndarray]]]) -> np.ndarray:
        # inference_mode (cheaper than no_grad) unless the sampler needs autograd (Langevin).
        with torch.no_grad() if self.network.predict_needs_gradients else torch.inference_mode():
            features = self.network.features(self._batch(histories))
            normalized = self.network.predict(features, GeneratorNoise(self._generator, self.device))
            actions = self.artifacts.bounds.denormalize(normalized)
        return actions.cpu().numpy().astype(np.float32)

    def energies(self, obs_history_or_last_obs: Union[None, Observation, Sequence[Observation]],
                 actions: np.ndarray) -> np.ndarray:
        """Energies [N] of env-space actions [N, action_dim] (EBMs only; lower = preferred).
        The observation argument is as for energy_grid."""
        history = self._history_for(obs_history_or_last_obs)
        candidates = torch.as_tensor(np.asarray(actions, np.float32), device=self.device).view(1, -1, self.action_dim)
        with torch.no_grad():
            features = self.network.features(self._batch([history]))
            energies = self.network.energy(features, self.artifacts.bounds.normalize(candidates))
        return energies[0].cpu().numpy().astype(np.float32)

    def energy_grid(self, obs_history_or_last_obs: Union[None, Observation, Sequence[Observation]],
                    resolution: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Energies over a resolution x resolution grid spanning action_low..action_high.

        Argument: None (the history the last act() used), a list of observations (oldest
        first), or one observation (appended to the current history, which is not changed).
        Returns xs [res], ys [res] in environment units and energies [res(y), res(x)]."""
        if self.action_dim != 2:
            raise ValueError(f"energy_grid needs a 2-D action space, this policy has {self.action_dim}")
        xs = np.linspace(self.action_low[0], self.action_high[0], resolution, dtype=np.float32)
        ys = np.linspace(self.action_low[1], self.action_high[1], resolution, dtype=np.float32)
        grid_x, grid_y = np.meshgrid(xs, ys)  # rows follow y
        actions = np.stack([grid_x.ravel(), grid_y.ravel()], axis=-1)
        return xs, ys, self.energies(obs_history_or_last_obs, actions).reshape(resolution, resolution)

    # ----- helpers -----
    def _history_for(self, given: Union[None, Observation, Sequence[Observation]]) -> list[dict[str, np.ndarray]]:
        if given is None:
            if self._last_history is None:
                raise ValueError("energy_grid(None) needs a previous act() call in this episode")
            return self._last_history
        if isinstance(given, Mapping):
            return self._padded((list(self._history) + [self._prepare(given)])[-self.history_length:])
        prepared = [self._prepare(obs) for obs in given][-self.history_length:]
        if not prepared:
            raise ValueError("energy_grid got an empty observation history")
        return self._padded(prepared)

    def _padded(self, history: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        return [history[0]] * (self.history_length - len(history)) + history

    def _prepare(self, obs: Observation) -> dict[str, np.ndarray]:
        prepared = {}
        spec = self.artifacts.spec
        for key in self.observation_keys:
            if key not in obs:
                raise ValueError(f"observation is missing {key!r} (policy needs {self.observation_keys})")
            value = np.asarray(obs[key])
            if key == "state":
                value = value.astype(np.float32).reshape(-1)
                if value.shape != (spec.state_dim,):
                    raise ValueError(f"obs['state'] has {value.size} values, policy expects {spec.state_dim}")
            else:
                value = preprocess_image(value, self.image_spec)
            prepared[key] = value
        return prepared

    def _batch(self, histories: list[list[dict[str, np.ndarray]]]) -> dict[str, torch.Tensor]:
        """Padded histories -> {key: [B, history_length, ...]} on the policy's device."""
        return {key: torch.from_numpy(np.stack([np.stack([obs[key] for obs in history]) for history in histories]))
                .to(self.device) for key in self.observation_keys}
