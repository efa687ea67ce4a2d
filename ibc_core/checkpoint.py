"""The one checkpoint format: a single torch.save'd dict

    format_version, kind, config (full TrainConfig), spec (observation/action shapes),
    image_spec, task, normalization (per observation key mean/std), action_bounds (env space),
    memory_size (nearest neighbour), step, weights (state_dict), training_state (optional:
    optimiser/scheduler for resume; stripped from exported policies).

Loading validates every part and rebuilds the exact network; anything wrong raises
CheckpointError saying what and where."""
from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from ibc_core.config_io import ConfigError, from_dict, load_config, to_dict
from ibc_core.data.preprocess import ImageSpec
from ibc_core.models.base import PolicyNetwork
from ibc_core.models.build import build_network
from ibc_core.models.encoders import ObservationSpec
from ibc_core.normalization import ActionBounds, ObservationStats
from ibc_core.config import TrainConfig

FORMAT_VERSION = 1
KIND = "ibc_ros.policy"
_REQUIRED = ("format_version", "kind", "config", "spec", "image_spec", "task", "normalization",
             "action_bounds", "memory_size", "step", "weights")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, truncated or does not match the network it describes."""


@dataclass
class PolicyArtifacts:
    """Everything besides the weights that defines a trained policy."""
    config: TrainConfig
    spec: ObservationSpec
    image_spec: Optional[ImageSpec]
    stats: dict[str, ObservationStats]
    bounds: ActionBounds
    task: str
    memory_size: int = 0

    def build(self) -> PolicyNetwork:
        network = build_network(self.spec, self.config.model, self.config.ebm, self.memory_size,
                                self.config.irvs)
        network.encoder.set_statistics(self.stats)
        return network


def save_checkpoint(path: str | Path, network: PolicyNetwork, artifacts: PolicyArtifacts, step: int,
                    training_state: Optional[dict[str, Any]] = None) -> Path:
    """Writes atomically (temporary file + rename): an interrupted save never leaves a bad file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "config": to_dict(artifacts.config),
        "spec": {"history_length": artifacts.spec.history_length, "action_dim": artifacts.spec.action_dim,
                 "state_dim": artifacts.spec.state_dim,
                 "image_hw": list(artifacts.spec.image_hw) if artifacts.spec.image_hw else None},
        "image_spec": to_dict(artifacts.image_spec) if artifacts.image_spec else None,
        "task": artifacts.task,
        "normalization": {k: v.to_dict() for k, v in artifacts.stats.items()},
        "action_bounds": artifacts.bounds.to_dict(),
        "memory_size": artifacts.memory_size,
        "step": step,
        "weights": {k: v.detach().cpu() for k, v in network.state_dict().items()},
    }
    if training_state is not None:
        payload["training_state"] = training_state
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".pt.tmp") as tmp:
        torch.save(payload, tmp)
    os.chmod(tmp.name, 0o644)   # temporary files are private (0600); a policy is shared with other users
    os.replace(tmp.name, path)
    return path


# What ibc-train exports into its run folder; a run folder stands for this file.
POLICY_FILE = "policy.pt"


def policy_file(path: str | Path) -> Path:
    """A checkpoint file as given, or a training run's folder: its exported policy.pt."""
    path = Path(path)
    return path / POLICY_FILE if path.is_dir() else path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw payload, after checking it is a readable checkpoint of this format. A training
    run's folder reads its policy.pt."""
    given, path = Path(path), policy_file(path)
    if given.is_dir() and not path.is_file():
        raise CheckpointError(f"{given} is a folder without {POLICY_FILE}: pass a checkpoint file, or the "
                              f"folder of a finished training run (ibc-train writes RUN/{POLICY_FILE})")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        # torch's own message can advise weights_only=False, i.e. running code from the file: not
        # advice to pass on about a file that is not a checkpoint.
        raise CheckpointError(f"{path} is not a readable checkpoint: corrupt or truncated, or another kind of "
                              f"file (torch.load: {type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("kind") != KIND:
        raise CheckpointError(f"{path} is not an ibc_ros policy checkpoint")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {payload.get('format_version')!r} is not supported "
                              f"(this code reads version {FORMAT_VERSION})")
    missing = [key for key in _REQUIRED if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: missing section(s) {', '.join(missing)}")
    return payload


def artifacts_from_payload(payload: dict[str, Any], path: str | Path,
                           overrides: Sequence[str] = ()) -> PolicyArtifacts:
    """overrides: key.sub=value changes to the stored config, for inference settings such as
    ebm.dfo.samples (a change that alters the network's shape fails when loading weights)."""
    try:
        load_config(TrainConfig, copy.deepcopy(payload["config"]))
    except ConfigError as exc:
        raise CheckpointError(f"{path}: invalid stored configuration: {exc}") from exc
    try:
        config = load_config(TrainConfig, copy.deepcopy(payload["config"]), overrides)
    except ConfigError as exc:
        raise ConfigError(f"setting {' '.join(overrides)!r} for {path}: {exc}") from exc
    try:
        spec_raw = payload["spec"]
        spec = ObservationSpec(history_length=int(spec_raw["history_length"]),
                               action_dim=int(spec_raw["action_dim"]), state_dim=spec_raw["state_dim"],
                               image_hw=tuple(spec_raw["image_hw"]) if spec_raw["image_hw"] else None)
        image_spec = from_dict(ImageSpec, payload["image_spec"]) if payload["image_spec"] else None
        stats = {key: ObservationStats.from_dict(payload["normalization"][key]) for key in spec.keys}
        bounds = ActionBounds.from_dict(payload["action_bounds"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: malformed spec/normalization/action_bounds section "
                              f"({type(exc).__name__}: {exc})") from exc
    if bounds.low.shape != (spec.action_dim,) or bounds.high.shape != (spec.action_dim,):
        raise CheckpointError(f"{path}: action_bounds have shape {bounds.low.shape}, "
                              f"expected ({spec.action_dim},)")
    for key, value in stats.items():
        expected = (spec.state_dim,) if key == "state" else (3,)
        if value.mean.shape != expected or value.std.shape != expected:
            raise CheckpointError(f"{path}: normalization[{key}] has shape {value.mean.shape}, expected {expected}")
    return PolicyArtifacts(config, spec, image_spec, stats, bounds, str(payload["task"]),
                           int(payload["memory_size"]))


def load_weights(network: PolicyNetwork, weights: dict[str, torch.Tensor], path: str | Path) -> None:
    expected = network.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong_shape = [f"{k} {tuple(weights[k].shape)} != {tuple(v.shape)}"
                   for k, v in expected.items() if k in weights and weights[k].shape != v.shape]
    if missing or unexpected or wrong_shape:
        details = "; ".join(part for part in (
            f"missing {missing[:5]}" if missing else "",
            f"unexpected {unexpected[:5]}" if unexpected else "",
            f"wrong shape {wrong_shape[:5]}" if wrong_shape else "") if part)
        raise CheckpointError(f"{path}: weights do not match the configured network: {details}")
    network.load_state_dict(weights)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu", overrides: Sequence[str] = ()
                    ) -> tuple[PolicyNetwork, PolicyArtifacts, dict[str, Any]]:
    """(network in eval mode on device, artifacts, raw payload)."""
    payload = read_checkpoint(path)
    artifacts = artifacts_from_payload(payload, path, overrides)
    network = artifacts.build()
    load_weights(network, payload["weights"], path)
    return network.to(device).eval(), artifacts, payload


# What must match for weights to be averaged: the same network, preprocessing and task, and the same
# training seed (weights of independently initialised runs do not average into a working network).
# Optimiser and run settings other than the seed may differ: a resumed run may have extended optim.steps.
_RUN_SECTIONS = ("spec", "image_spec", "task", "normalization", "action_bounds", "memory_size")
_RUN_CONFIG_SECTIONS = ("data", "model", "ebm", "irvs")


def _run_identity(payload: dict[str, Any]) -> dict[str, Any]:
    config = payload["config"]
    return {**{section: payload[section] for section in _RUN_SECTIONS},
            **{f"config.{section}": config.get(section) for section in _RUN_CONFIG_SECTIONS},
            "config.run.seed": config.get("run", {}).get("seed")}


def average_checkpoints(paths: Sequence[str | Path]) -> tuple[PolicyNetwork, PolicyArtifacts, int]:
    """Uniform average of the weights of several checkpoints of one training run (network,
    artifacts and step of the last). IBC's closed-loop success swings between neighbouring
    checkpoints; their average beat each of its members on validation seeds (docs/RESULTS.md,
    "Checkpoint averaging"). Spectral-normalised networks are refused: their stored power-iteration
    vectors belong to each checkpoint's own weights, and an average of them is not one."""
    if len(paths) < 2:
        raise CheckpointError(f"averaging needs at least 2 checkpoints, got {len(paths)}")
    payloads = [read_checkpoint(path) for path in paths]
    last, last_path = payloads[-1], paths[-1]
    identity = _run_identity(last)
    for path, payload in zip(paths, payloads):
        differing = [key for key, value in _run_identity(payload).items() if value != identity[key]]
        if differing:
            raise CheckpointError(f"{path}: {', '.join(differing)} differ from {last_path}: only checkpoints "
                                  "of one training run can be averaged")
    spectral = [key for key in last["weights"] if key.endswith(("._u", "._v"))]
    if spectral:
        raise CheckpointError(f"{last_path}: spectral-normalised network ({spectral[0]}, ...): "
                              "averaging its checkpoints is not supported")
    artifacts = artifacts_from_payload(last, last_path)
    network = artifacts.build()
    averaged = {}
    for key, value in last["weights"].items():
        members = [payload["weights"].get(key) for payload in payloads]
        if any(member is None or member.shape != value.shape for member in members):
            raise CheckpointError(f"{key}: missing or of another shape in some of {[str(p) for p in paths]}")
        # Integer buffers (counters) are not averaged: the last checkpoint's are kept.
        averaged[key] = (torch.stack([m.double() for m in members]).mean(0).to(value.dtype)
                         if value.is_floating_point() else value)
    load_weights(network, averaged, last_path)
    return network.eval(), artifacts, int(last["step"])
