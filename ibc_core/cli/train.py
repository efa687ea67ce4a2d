"""ibc-train: train a policy from a YAML config plus key.sub=value overrides.

    ibc-train config/train_push_states.yaml data.path=data/push_states run.out_dir=runs/states
    ibc-train train_push_pixels model.kind=mse                 # a name resolves to config/<name>.yaml
    ibc-train train_push_states run.out_dir=runs/states --resume
    ibc-train train_irvs_push data.path=data/irvs/push_mixed     # IRvS (model.kind: irvs)
    torchrun --nproc_per_node 2 -m ibc_core.cli.train train_push_states ...   # data parallel

Writes out_dir/policy.pt (load with ibc_core.policy.Policy), out_dir/checkpoints/ and
out_dir/tensorboard/.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from ibc_core.checkpoint import CheckpointError
from ibc_core.cli.common import report_errors
from ibc_core.config_io import ConfigError, load_config
from ibc_core.data.episodes import DatasetError
from ibc_core.irvs.trainer import IRvSTrainer
from ibc_core.training.config import TrainConfig
from ibc_core.training.trainer import Trainer


def resolve_config(name: str) -> Path:
    """A path to a YAML file, or the name of a shipped config (config/<name>.yaml)."""
    path = Path(name)
    if path.is_file():
        return path
    from ibc_ros.paths import share_file  # ROS-free helper that locates config/
    stem = name if name.endswith(".yaml") else f"{name}.yaml"
    try:
        return Path(share_file("config", Path(stem).name))
    except FileNotFoundError as exc:
        raise ConfigError(f"config {name!r} is neither a file nor a shipped config") from exc


def train(config: str, overrides: Sequence[str], resume: bool) -> Path:
    """Trains with the trainer the config's model kind needs; returns the policy file."""
    cfg = load_config(TrainConfig, resolve_config(config), overrides)
    trainer_class = IRvSTrainer if cfg.model.kind == "irvs" else Trainer
    return trainer_class(cfg, resume=resume).run()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="ibc-train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("config", help="YAML file or shipped config name (e.g. train_push_states)")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. optim.steps=2000")
    parser.add_argument("--resume", action="store_true", help="continue from out_dir/checkpoints/last.pt")
    args = parser.parse_args(argv)
    return report_errors("ibc-train", (ConfigError, DatasetError, CheckpointError, FileNotFoundError),
                         lambda: f"policy written to {train(args.config, args.overrides, args.resume)}")


if __name__ == "__main__":
    sys.exit(main())
