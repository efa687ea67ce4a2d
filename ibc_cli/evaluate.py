"""ibc-eval: success rate of a policy checkpoint (or the oracle) on held-out seeds.

    ibc-eval --checkpoint runs/push_states/policy.pt --task push_states --episodes 100 \
             --json out/eval.json --video out/eval.mp4
    ibc-eval --oracle --task push_multi_states --episodes 200 --workers 2
    ibc-eval --checkpoint runs/irvs_push/policy.pt --task push_states policy.irvs.inverse_eta=2
    ibc-eval --oracle --task push_multi_states task.success_tolerance=0.02 task.max_steps=60
    ibc-eval --checkpoint runs/particle_8d/policy.pt --task particle_8d --device cuda --batch 100

Evaluation seeds start at sim.tasks.EVAL_SEED_BASE (ibc-data keeps training seeds below), so
no evaluated episode was seen in training. Prints the success rate with a 95% Wilson interval.

--batch N steps N episodes in lock-step and runs the policy once per step for all of them (one
network call for N observations: what makes a GPU pay off). The envs and seeds are the same;
an EBM's inference noise is then shared by the batch, so its episodes can differ from a
--batch 1 run of the same seeds (an explicit model's cannot).

Overrides: KEY=VALUE words anywhere among the options, the key naming the configuration first:
task.KEY changes the task config (config/sim_<task>.yaml, as ibc-data's task.KEY), policy.KEY an
inference setting of the checkpoint (its training config, KEY as ibc-train's), e.g.
policy.ebm.dfo.samples=16384 or policy.irvs.inverse_eta=2. An unknown key stops before anything
runs, naming the word.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from ibc_cli.common import ROLLOUT, add_override_words, parse_command_line, parse_overrides
from ibc_core.config_io import ConfigError
from sim.config import load_task_config, task_names
from sim.particle import ParticleEnv
from sim.rollout import EpisodeResult, run_episode, run_episodes_lockstep, summarize
from sim.tasks import EVAL_SEED_BASE, OraclePolicy, make_env

VIDEO_SIZE = (320, 180)


def particle_frame(env: ParticleEnv, size: int = 240) -> np.ndarray:
    """Top view of the first two particle dimensions: goal 1 green, goal 2 blue, particle red."""
    import cv2
    frame = np.full((size, size, 3), 255, np.uint8)
    def pixel(point: np.ndarray) -> tuple[int, int]:
        xy = np.resize(point, 2)
        return int(10 + xy[0] * (size - 20)), int(size - 10 - xy[1] * (size - 20))
    radius = max(2, int(env.config.particle_goal_radius * (size - 20)))
    cv2.circle(frame, pixel(env.goals[0]), radius, (60, 180, 80), -1)
    cv2.circle(frame, pixel(env.goals[1]), radius, (70, 130, 235), -1)
    cv2.circle(frame, pixel(env.position), 5, (220, 50, 50), -1)
    return frame


def load_policy(args: argparse.Namespace):
    if args.oracle:
        return None
    from ibc_core.policy import CheckpointError, Policy   # torch is only needed for checkpoints
    try:
        policy = Policy.load(args.checkpoint, device=args.device, overrides=args.policy_overrides,
                             precision=args.precision)
        if not args.any_task:
            policy.check_task(args.task)
    except (CheckpointError, ValueError) as exc:
        hint = " (--any-task evaluates it anyway)" if "trained for task" in str(exc) else ""
        raise ValueError(f"cannot load checkpoint {args.checkpoint}: {exc}{hint}") from exc
    return policy


_worker_state: dict = {}


def _init_worker(args: argparse.Namespace, torch_threads: int = 0) -> None:
    """Each worker process builds its own env and policy once."""
    if torch_threads and not args.oracle:
        import torch
        torch.set_num_threads(torch_threads)
    env = make_env(args.task, args.overrides)
    _worker_state.update(env=env, policy=load_policy(args) or OraclePolicy(env))


def _evaluate_seed(job: tuple[int, bool]) -> tuple[EpisodeResult, list[np.ndarray]]:
    """One episode; the policy reseeds its inference noise at reset, so the result depends on the
    seed only, not on which worker ran it or what it ran before."""
    seed, filming = job
    env, policy = _worker_state["env"], _worker_state["policy"]
    if isinstance(env, ParticleEnv):
        film = lambda: particle_frame(env)  # noqa: E731
    else:
        film = lambda: env.world.render_rgb(*VIDEO_SIZE)  # noqa: E731
    rollout = run_episode(env, policy, seed, frame_fn=film if filming else None)
    return rollout.result(), rollout.frames


@contextmanager
def _caller_torch_threads_kept(args: argparse.Namespace) -> Iterator[None]:
    """An in-process evaluation sets torch's thread count; its caller gets its own back."""
    if args.oracle:
        yield
        return
    import torch
    previous = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _lockstep_episodes(args: argparse.Namespace,
                       seeds: list[int]) -> Iterator[tuple[EpisodeResult, list[np.ndarray]]]:
    """--batch N: groups of N episodes stepped together, one policy call per step for the group."""
    with _caller_torch_threads_kept(args):
        import torch
        torch.set_num_threads(args.threads or torch.get_num_threads())
        policy = load_policy(args)
        envs = [make_env(args.task, args.overrides) for _ in range(min(args.batch, len(seeds)))]
        try:
            for first in range(0, len(seeds), args.batch):
                group = seeds[first:first + args.batch]
                for rollout in run_episodes_lockstep(envs[:len(group)], policy, group):
                    yield rollout.result(), []
        finally:
            for env in envs:
                env.close()


def _episodes(args: argparse.Namespace,
              jobs: list[tuple[int, bool]]) -> Iterator[tuple[EpisodeResult, list[np.ndarray]]]:
    if args.batch > 1:
        yield from _lockstep_episodes(args, [seed for seed, _ in jobs])
        return
    if args.workers == 1:
        with _caller_torch_threads_kept(args):
            _init_worker(args, args.threads)
            try:
                yield from map(_evaluate_seed, jobs)
            finally:
                _worker_state["env"].close()
        return
    # Bad input fails here, with its message: an exception in a pool initializer would only
    # make the pool restart workers forever.
    load_task_config(args.task, args.overrides)
    load_policy(args)
    context = multiprocessing.get_context("spawn")   # PyBullet clients must not be forked
    # One torch thread per worker: W workers already use W cores.
    with context.Pool(args.workers, initializer=_init_worker, initargs=(args, 1)) as pool:
        yield from pool.imap(_evaluate_seed, jobs)   # ordered: the same summary for any --workers


def evaluate(args: argparse.Namespace) -> dict:
    seeds = range(args.seed, args.seed + args.episodes)
    jobs = [(seed, args.video is not None and index < args.video_episodes) for index, seed in enumerate(seeds)]
    results, videos = [], []
    start = time.perf_counter()
    progress = tqdm(_episodes(args, jobs), total=len(jobs), desc=f"eval {args.task}", unit="ep")
    for result, frames in progress:
        results.append(result)
        videos.extend(frames)
        progress.set_postfix(success=f"{sum(r.success for r in results)}/{len(results)}")
    summary = {"task": args.task, "policy": "oracle" if args.oracle else str(args.checkpoint),
               "task_overrides": list(args.overrides), "policy_overrides": list(args.policy_overrides),
               "precision": args.precision, "device": args.device, "batch": args.batch,
               **summarize(results), "seeds": [seeds.start, seeds.stop],
               "seconds": time.perf_counter() - start, "per_episode": [asdict(r) for r in results]}
    if args.video is not None:
        import imageio
        args.video.parent.mkdir(parents=True, exist_ok=True)
        fps = load_task_config(args.task, args.overrides).control_hz
        imageio.mimwrite(args.video, videos, fps=fps, macro_block_size=1)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ibc-eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="policy checkpoint (ibc-train output)")
    source.add_argument("--oracle", action="store_true", help="evaluate the task's scripted oracle")
    parser.add_argument("--task", required=True, help=f"one of {', '.join(task_names())}")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=EVAL_SEED_BASE, help="first evaluation seed")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--video", type=Path, help="MP4 of the first --video-episodes rollouts")
    parser.add_argument("--video-episodes", type=int, default=3)
    add_override_words(parser, "task.KEY=VALUE (task config) and policy.KEY=VALUE (inference settings) "
                               "overrides, e.g. task.success_tolerance=0.01 policy.irvs.inverse_eta=2",
                       old={"--set": "task.", "--policy-set": "policy."})
    parser.add_argument("--workers", type=int, default=1,
                        help="parallel processes, one torch thread each (same results for any number)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of a single worker (default 1; 0: torch's default, all cores). Use "
                             "--workers for more cores: with other jobs on the CPU, OpenMP threads "
                             "that wait for a core made a particle evaluation 20x slower")
    parser.add_argument("--any-task", action="store_true",
                        help="evaluate a checkpoint trained for another task (refused otherwise)")
    parser.add_argument("--batch", type=int, default=1,
                        help="episodes stepped in lock-step, the policy acting for all in one call (GPU); "
                             "see above")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16", "int8"],
                        help="DFO search precision (auto: bfloat16 where the CPU/GPU has it, else int8 "
                             "on x86 CPUs; the action is always chosen in float32; docs/BENCHMARKS.md)")
    args = parse_command_line(parser, argv)
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    if args.threads is not None and args.threads < 0:
        parser.error("--threads must be >= 0")
    if args.batch < 1:
        parser.error("--batch must be >= 1")
    if args.batch > 1 and (args.oracle or args.workers > 1 or args.video is not None):
        parser.error("--batch runs a checkpoint in this process: not with --oracle, --workers or --video")
    if args.threads not in (None, 1) and args.workers > 1:
        parser.error("--threads is for a single worker; each of --workers N uses one thread")
    args.threads = 1 if args.threads is None else args.threads
    if args.seed < EVAL_SEED_BASE:
        parser.error(f"--seed must be >= {EVAL_SEED_BASE}: lower seeds are training seeds")
    try:
        overrides = parse_overrides(args.words, ROLLOUT)
        args.overrides, args.policy_overrides = overrides["task"], overrides["policy"]
        if args.oracle and args.policy_overrides:
            raise ConfigError(f"--oracle has no policy settings to change: {' '.join('policy.' + w for w in args.policy_overrides)}")
        summary = evaluate(args)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"ibc-eval: error: {exc}", file=sys.stderr)
        return 2
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    low, high = summary["wilson95"]
    print(f"{summary['task']}: success {summary['successes']}/{summary['episodes']} = "
          f"{summary['success_rate']:.3f} (95% Wilson [{low:.3f}, {high:.3f}]), "
          f"mean score {summary['mean_score']:.3f}, mean steps {summary['mean_steps']:.1f}, {summary['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
