"""ibc-train: train a policy from a YAML config plus KEY=VALUE overrides (section.field=value).

    ibc-train config/train_push_states.yaml data.path=data/push_states run.out_dir=runs/states
    ibc-train train_push_pixels model.kind=mse                 # a name resolves to config/<name>.yaml
    ibc-train train_push_states run.out_dir=runs/states --resume    # the run's own settings
    ibc-train train_push_states run.out_dir=runs/states --resume optim.steps=30000   # ... but longer
    ibc-train train_irvs_push data.path=data/irvs/push_mixed     # IRvS (model.kind: irvs)
    torchrun --nproc_per_node 2 -m ibc_cli.train train_push_states ...   # data parallel

Writes out_dir/policy.pt (load with ibc_core.policy.Policy), out_dir/checkpoints/ and
out_dir/tensorboard/. --resume continues out_dir/checkpoints/last.pt with the configuration
stored in it; only the overrides given on the command line change it (printed). Ctrl-C stops
after the step in progress, saves it and prints the command that resumes.

Overrides: KEY=VALUE words anywhere after the config, the key a field of the training config
(sections data, model, ebm, optim, run, irvs; ibc_core/config.py), the value YAML. An unknown
key stops before anything runs, naming the word. The same words go to ibc-bench; ibc-eval and
ibc-ros take them with a policy. prefix (policy.ebm.dfo.samples=4096).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from ibc_core.checkpoint import CheckpointError, artifacts_from_payload, read_checkpoint
from ibc_cli.common import TRAINING, add_override_words, parse_command_line, parse_overrides, report_errors
from ibc_core.config_io import ConfigError, load_config, to_dict
from ibc_core.data.episodes import DatasetError
from ibc_core.irvs.trainer import IRvSTrainer
from ibc_core.config import TrainConfig
from ibc_core.training.trainer import LAST_CHECKPOINT, Trainer, TrainingInterrupted


def resolve_config(name: str) -> Path:
    """A path to a YAML file, or the name of a shipped config (config/<name>.yaml)."""
    path = Path(name)
    if path.is_file():
        return path
    from cell.paths import share_file  # ROS-free helper that locates config/
    stem = name if name.endswith(".yaml") else f"{name}.yaml"
    try:
        return Path(share_file("config", Path(stem).name))
    except FileNotFoundError as exc:
        raise ConfigError(f"config {name!r} is neither a file nor a shipped config") from exc


def stored_config(config: str, overrides: Sequence[str]) -> TrainConfig:
    """--resume: the configuration stored in the run's last checkpoint (the run is
    run.out_dir, from the overrides or the config), changed only by the given overrides."""
    out_dir = Path(load_config(TrainConfig, resolve_config(config), overrides).run.out_dir)
    last = out_dir / "checkpoints" / LAST_CHECKPOINT
    if not last.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {last}")
    payload = read_checkpoint(last)
    cfg = load_config(TrainConfig, to_dict(artifacts_from_payload(payload, last).config), overrides)
    changes = [o for o in overrides if not o.startswith("run.out_dir=")]
    print(f"resuming {out_dir} at step {payload['step']} with its stored configuration"
          + (f", changed by: {' '.join(changes)}" if changes else ""), flush=True)
    return cfg


def train(config: str, words: Sequence[str], resume: bool) -> Path:
    """Trains with the trainer the config's model kind needs; returns the policy file."""
    overrides = parse_overrides(words, TRAINING)[""]
    cfg = stored_config(config, overrides) if resume else load_config(TrainConfig, resolve_config(config), overrides)
    trainer_class = IRvSTrainer if cfg.model.kind == "irvs" else Trainer
    try:
        return trainer_class(cfg, resume=resume).run()
    except TrainingInterrupted as stop:
        print(f"\nibc-train: {stop}. Continue with:\n  ibc-train {config} run.out_dir={cfg.run.out_dir} --resume",
              file=sys.stderr)
        raise SystemExit(130) from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="ibc-train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("config", help="YAML file or shipped config name (e.g. train_push_states)")
    add_override_words(parser, "training config overrides, e.g. optim.steps=2000 model.mlp.width=256",
                       old={"--set": ""})
    parser.add_argument("--resume", action="store_true", help="continue from out_dir/checkpoints/last.pt")
    args = parse_command_line(parser, argv)   # overrides may also follow --resume
    return report_errors("ibc-train", (ConfigError, DatasetError, CheckpointError, FileNotFoundError),
                         lambda: f"policy written to {train(args.config, args.words, args.resume)}")


if __name__ == "__main__":
    sys.exit(main())
