"""ibc-data: oracle demonstrations in the project's dataset format.

    ibc-data generate --task push_states --episodes 2000 --out data/push_states --workers 2
    ibc-data generate --task push_states --episodes 150 --out data/push_noisy \
             task.oracle_noise=0.3 --keep-failed --seed 100000      # IRvS: noisy, failures kept
    ibc-data mix --out data/irvs/push_mixed data/push_states:50 data/irvs/push_noisy
    ibc-data from-bags ...                                         # recorded demonstrations
    ibc-data export --format lerobot data/push_pixels --out data/push_pixels_lerobot   # LeRobot v3.0
    ibc-data import --format lerobot data/push_pixels_lerobot --out data/push_pixels_back

Episode i uses environment seed --seed + i (training seeds stay below sim.tasks.EVAL_SEED_BASE;
evaluation uses seeds from there). Each episode is written as soon as it is done, so an interrupted run
loses nothing: rerun it (or a larger --episodes) and only the seeds not yet in --out run.
Failed oracle episodes are left out (reported at the end) and retried on a rerun. Pixel
tasks store frames preprocessed with the task's image_spec (recorded in meta.json).
--keep-failed stores failed episodes too (success=False), for return-aware training (IRvS).
mix merges datasets of the same task into a new one (SOURCE:N takes the first N episodes of
SOURCE); the sources must agree on the task, action limits, control rate and observations.

generate's overrides: task.KEY=VALUE words anywhere among its options, the key a field of the task
config (config/sim_<task>.yaml, sim/config.py), the value YAML: task.max_steps=100 - the same
words as ibc-eval's. An unknown key stops before anything is written, naming the word.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterator

import numpy as np
from tqdm import tqdm

from ibc_cli.common import TASK, add_override_words, parse_command_line, parse_overrides, report_errors
from ibc_core.config_io import ConfigError, to_dict
from ibc_core.data.episodes import DatasetError, DatasetWriter, Episode, episode_files, read_meta
from ibc_core.data.preprocess import preprocess_image
from ibc_core.irvs.mix import mix, parse_source
from sim.config import TaskConfig, load_task_config, task_names
from sim.rollout import run_episode
from sim.tasks import EVAL_SEED_BASE, OraclePolicy, make_env

_worker_state: dict = {}


def dataset_meta(config: TaskConfig, env) -> dict:
    """Dataset-wide facts; seeds are per episode (a resumed dataset spans several runs)."""
    keys = list(config.observation_keys)
    meta = {"task": config.task, "action_low": np.asarray(env.action_low).tolist(),
            "action_high": np.asarray(env.action_high).tolist(), "control_hz": config.control_hz,
            "observation_keys": keys, "state_dim": int(env.observation()["state"].shape[0]),
            "max_steps": config.max_steps, "success_tolerance": config.success_tolerance,
            "source": "oracle"}
    if "rgb" in keys:
        meta["image_spec"] = to_dict(config.image_spec)
    if config.kind == "particle":
        meta["success_tolerance"] = config.particle_goal_radius
    if config.oracle_noise > 0:
        meta["oracle_noise"] = config.oracle_noise
    return meta


def _init_worker(task: str, overrides: list[str], keep_failed: bool = False) -> None:
    env = make_env(task, overrides)
    _worker_state.update(env=env, policy=OraclePolicy(env), keep_failed=keep_failed)


def _generate(seed: int) -> Episode | None:
    env, policy = _worker_state["env"], _worker_state["policy"]
    rollout = run_episode(env, policy, seed, record_observations=True)
    if not rollout.success and not _worker_state["keep_failed"]:
        return None
    observations = {"state": np.stack(rollout.observations["state"])}
    if "rgb" in rollout.observations:
        spec = env.config.image_spec
        observations["rgb"] = np.stack([preprocess_image(f, spec) for f in rollout.observations["rgb"]])
    return Episode(actions=np.stack(rollout.actions), observations=observations, success=rollout.success, seed=seed,
                   info={"final_distance": rollout.final_distance})


def stored_seeds(root: Path) -> set[int]:
    """Environment seeds of the episodes already in a dataset directory (none if it is new)."""
    seeds = set()
    for path in episode_files(root):
        with np.load(path) as arrays:
            seeds.add(int(arrays["seed"]))
    return seeds


def _episodes(task: str, overrides: list[str], seeds: list[int], workers: int,
              keep_failed: bool = False) -> Iterator[Episode | None]:
    if workers == 1:
        _init_worker(task, overrides, keep_failed)
        yield from map(_generate, seeds)
        return
    context = multiprocessing.get_context("spawn")   # PyBullet clients must not be forked
    with context.Pool(workers, initializer=_init_worker, initargs=(task, overrides, keep_failed)) as pool:
        yield from pool.imap(_generate, seeds, chunksize=4)   # ordered: same dataset for any W


def generate(task: str, episodes: int, out: Path, workers: int = 1, seed: int = 0,
             overrides: list[str] | None = None, keep_failed: bool = False) -> tuple[int, int]:
    """Write oracle demos for seeds [seed, seed + episodes); returns (written, failed);
    keep_failed also writes the failed episodes (success=False; counted in both)."""
    overrides = overrides or []
    if episodes < 1 or workers < 1:
        raise ValueError("--episodes and --workers must be >= 1")
    if seed < 0 or seed + episodes > EVAL_SEED_BASE:
        raise ValueError(f"training seeds must lie in [0, {EVAL_SEED_BASE}) (evaluation uses the rest)")
    config = load_task_config(task, overrides)
    probe = make_env(config)
    meta = dataset_meta(config, probe)
    probe.close()
    writer = DatasetWriter(out, meta)
    done = stored_seeds(out)
    seeds = [s for s in range(seed, seed + episodes) if s not in done]
    if done:
        print(f"resuming {out}: {episodes - len(seeds)} of these seeds are already stored, {len(seeds)} to run")
    written = failed = 0
    progress = tqdm(_episodes(task, overrides, seeds, workers, keep_failed), total=len(seeds),
                    desc=f"{task} demos", unit="ep")
    for episode in progress:
        if episode is None or not episode.success:
            failed += 1
        if episode is not None:
            writer.add(episode)
            written += 1
        progress.set_postfix(failed=failed)
    return written, failed


def _add_from_bags_subcommand(sub: argparse._SubParsersAction) -> None:
    """from-bags: recorded rosbag2 demonstrations (cell.recording, no rclpy). It needs rosbags
    and, for the controller's envelope, PyBullet; where they are missing (e.g. a GPU machine that
    only generates particle demos) `generate` still works and from-bags says what is missing."""
    try:
        from cell.recording.bag_to_dataset import add_from_bags_subcommand
    except ImportError as exc:
        _add_unavailable(sub, "from-bags", exc)
        return
    add_from_bags_subcommand(sub)


def _add_unavailable(sub: argparse._SubParsersAction, name: str, exc: ImportError) -> None:
    """A subcommand whose module cannot be imported here: it says what is missing."""
    reason = f"{name} needs {exc.name}, which is not installed here ({exc})"
    missing = sub.add_parser(name, help=f"unavailable here: {exc}")
    missing.set_defaults(func=lambda _args: _unavailable(reason))


def _unavailable(reason: str) -> int:
    print(f"ibc-data: error: {reason}", file=sys.stderr)
    return 2


LEROBOT_HELP = """Field mapping (ours -> LeRobot v3.0 feature): state -> observation.state (float32 [S]),
rgb -> observation.images.camera (video, H.264 yuv420p, [H, W, 3]), actions -> action (float32 [A],
the delta setpoint in metres), success -> next.success (bool, on the last step), the last step ->
next.done, step t -> frame_index t, timestamp t / fps (fps = meta.json control_hz); the task name
is the LeRobot task. Export also writes meta/ibc_ros.json (our meta.json, seeds, episode info),
which import uses to give the same dataset back. docs/ECOSYSTEM.md has the full table."""


def _add_lerobot_subcommands(sub: argparse._SubParsersAction) -> None:
    """export / import --format lerobot (cell.recording.lerobot: PyAV and pyarrow)."""
    try:
        from cell.recording import lerobot
    except ImportError as exc:
        for name in ("export", "import"):
            _add_unavailable(sub, name, exc)
        return
    errors = (DatasetError, lerobot.LeRobotError)
    export = sub.add_parser("export", help="write a dataset as a LeRobot v3.0 dataset (Parquet + MP4)",
                            description="Write DATASET (ibc-data generate / from-bags) as a new LeRobot "
                            "v3.0 folder.\n\n" + LEROBOT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("--format", required=True, choices=["lerobot"], help="the format to write")
    export.add_argument("dataset", type=Path, help="our dataset directory (meta.json + episodes/)")
    export.add_argument("--out", type=Path, required=True, help="new LeRobot folder (must not exist, or be empty)")
    export.add_argument("--robot-type", default=None,
                        help="info.json robot_type (default: xarm6; none for particle tasks)")
    export.add_argument("--crf", type=int, default=lerobot.DEFAULT_CRF,
                        help=f"H.264 quality, lower is better and larger (default {lerobot.DEFAULT_CRF})")
    export.set_defaults(func=lambda args: _run_lerobot(errors, lambda: lerobot.export_lerobot(
        args.dataset, args.out, args.robot_type or _robot_type(args.dataset), args.crf).summary()))
    _add_lerobot_import(sub, lerobot, errors)


def _add_lerobot_import(sub: argparse._SubParsersAction, lerobot: ModuleType,
                       errors: tuple[type[Exception], ...]) -> None:
    imp = sub.add_parser("import", help="read a LeRobot v3.x dataset into a new dataset for ibc-train",
                         description="Read a LeRobot v3.x folder (an export of ours, or another dataset "
                         "with compatible features)\ninto a new dataset directory that ibc-train trains on. "
                         "Frames are decoded with PyAV, not resized.\nA missing key, a v2.x dataset or a "
                         "non-empty --out stops it before anything is written.\n\n" + LEROBOT_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("--format", required=True, choices=["lerobot"], help="the format to read")
    imp.add_argument("source", type=Path, help="LeRobot v3.x dataset folder (meta/info.json, data/, videos/)")
    imp.add_argument("--out", type=Path, required=True, help="new dataset directory (must not exist, or be empty)")
    imp.add_argument("--action-key", default=lerobot.ACTION_KEY, help="feature read as the action (default: action)")
    imp.add_argument("--state-key", default=lerobot.AUTO,
                     help=f"feature read as the state: a key, none, or auto ({lerobot.STATE_KEY} if present)")
    imp.add_argument("--image-key", default=lerobot.AUTO,
                     help="video feature read as the rgb observation: a key, none, or auto (the only camera)")
    imp.add_argument("--task", default=None, help="task name for meta.json (default: the exported task, "
                     "or the dataset's one LeRobot task string)")
    imp.set_defaults(func=lambda args: _run_lerobot(errors, lambda: lerobot.import_lerobot(
        args.source, args.out, lerobot.LeRobotKeys(args.action_key, args.state_key, args.image_key),
        args.task).summary()))


def _robot_type(dataset: Path) -> str | None:
    """LeRobot's robot_type: none for the particle tasks (no robot), else the cell's arm."""
    return None if str(read_meta(dataset).get("task", "")).startswith("particle") else "xarm6"


def _run_lerobot(errors: tuple[type[Exception], ...], work: Callable[[], str]) -> int:
    start = time.perf_counter()
    try:
        return report_errors("ibc-data", errors, lambda: f"{work()}\nin {time.perf_counter() - start:.1f} s")
    except KeyboardInterrupt:
        print("\nibc-data: interrupted; nothing was written", file=sys.stderr)
        return 130


def _mix(args: argparse.Namespace) -> int:
    return report_errors("ibc-data", (DatasetError,), lambda: (
        f"wrote {mix(args.out, [parse_source(text) for text in args.sources])} episodes to {args.out}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ibc-data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write oracle demonstrations")
    gen.add_argument("--task", required=True, help=f"one of {', '.join(task_names())}")
    gen.add_argument("--episodes", type=int, required=True)
    gen.add_argument("--out", type=Path, required=True, help="dataset directory (created or resumed)")
    gen.add_argument("--workers", type=int, default=1, help="parallel processes")
    gen.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    add_override_words(gen, "task config overrides, e.g. task.max_steps=100 task.oracle_noise=0.3",
                       old={"--set": "task."})
    gen.add_argument("--keep-failed", action="store_true",
                     help="also store failed episodes (success=False), e.g. noisy-oracle data for IRvS")
    merge = sub.add_parser("mix", help="merge datasets of one task into a new dataset")
    merge.add_argument("--out", type=Path, required=True, help="new dataset directory")
    merge.add_argument("sources", nargs="+", help="dataset directories, optionally DIR:N (first N episodes)")
    merge.set_defaults(func=_mix)
    _add_from_bags_subcommand(sub)
    _add_lerobot_subcommands(sub)
    args = parse_command_line(parser, argv)
    if args.command != "generate":
        return args.func(args)
    start = time.perf_counter()
    try:
        overrides = parse_overrides(args.words, TASK)["task"]
        written, failed = generate(args.task, args.episodes, args.out, args.workers, args.seed, overrides,
                                   args.keep_failed)
    except (ConfigError, DatasetError, ValueError) as exc:
        print(f"ibc-data: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nibc-data: interrupted; every finished episode is in {args.out}. Run the same command "
              "again to generate the rest.", file=sys.stderr)
        return 130
    elapsed = time.perf_counter() - start
    outcome = "kept" if args.keep_failed else "left out"
    ran = written if args.keep_failed else written + failed   # kept failures are counted in both
    print(f"wrote {written} episodes to {args.out} ({failed} failed oracle episodes {outcome}) "
          f"in {elapsed:.1f} s ({elapsed / max(ran, 1):.3f} s/episode)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
