"""IRvS on the paper's didactic four-goal room (section 3.2), trained for real through the
IRvS trainer from config/train_irvs_four_goals.yaml (about half a minute on 2 busy cores).

The behaviour data heads for each corner equally often. Acting by the exponential tilt with
1/eta = 0 reproduces that (every goal reached from some of a symmetric grid of starts, none
dominant); with 1/eta = 5 the same checkpoint heads for the best goal (reward 1) from most
starts. The tilt is an inference setting: Policy.load(..., overrides=["irvs.inverse_eta=..."])."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ibc_core.config_io import load_config
from ibc_core.irvs.trainer import IRvSTrainer
from ibc_core.policy import Policy
from ibc_core.config import TrainConfig
from cell.paths import share_file
from sim.four_goals import BEST_GOAL, GOALS, FourGoalsEnv, write_dataset

STARTS = np.stack(np.meshgrid(np.linspace(-0.7, 0.7, 6), np.linspace(-0.7, 0.7, 6)), -1).reshape(-1, 2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("four_goals")
    data = write_dataset(root / "data", episodes=300, seed=0)
    cfg = load_config(TrainConfig, share_file("config", "train_irvs_four_goals.yaml"),
                      [f"data.path={data}", f"run.out_dir={root / 'run'}", "run.progress=false"])
    return IRvSTrainer(cfg).run()


def goal_visits(policy: Policy) -> np.ndarray:
    """How often each goal (and, last, no goal) is reached from the grid of starts."""
    env, counts = FourGoalsEnv(), np.zeros(len(GOALS) + 1, int)
    for start in STARTS:
        obs, done = env.reset_to(start), False
        policy.reset()
        while not done:
            obs, done, _ = env.step(policy.act(obs))
        counts[len(GOALS) if env.reached is None else env.reached] += 1
    return counts / len(STARTS)


def test_behaviour_like_without_tilt_and_best_goal_with_it(checkpoint: Path) -> None:
    untilted = goal_visits(Policy.load(checkpoint, device="cpu", overrides=["irvs.inverse_eta=0"]))
    tilted = goal_visits(Policy.load(checkpoint, device="cpu", overrides=["irvs.inverse_eta=5"]))
    print(f"goal visits (rewards -1, -1/4, 1/2, 1, none): 1/eta=0 {untilted}, 1/eta=5 {tilted}")
    assert untilted[-1] == 0 and tilted[-1] == 0, "every rollout ends at a goal"
    # Behaviour-like: all four goals reached, none from most of the starts (uniform would be 0.25).
    assert untilted[:4].min() >= 0.1 and untilted[:4].max() <= 0.45, untilted
    # Tilted: the best goal from most starts.
    assert tilted[BEST_GOAL] >= 0.75, tilted
    assert tilted[BEST_GOAL] >= untilted[BEST_GOAL] + 0.4


def test_policy_energy_profile_prefers_the_best_goal_direction_when_tilted(checkpoint: Path) -> None:
    """energies() over actions alone is the tilted energy min_G E(s, a, G) - G/eta: at the
    centre its minimum points at the best goal (pi/4) only once the tilt is on."""
    headings = np.linspace(-np.pi, np.pi, 73, dtype=np.float32)[:, None]
    centre = {"state": np.zeros(2, np.float32)}
    tilted = Policy.load(checkpoint, device="cpu", overrides=["irvs.inverse_eta=5"])
    best_heading = float(headings[np.argmin(tilted.energies(centre, headings)), 0])
    assert abs(best_heading - np.pi / 4) < 0.3, best_heading
