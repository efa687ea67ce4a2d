"""ibc-data generate and ibc-eval --oracle end to end (real PyBullet episodes, real files)."""
from __future__ import annotations

import json

import imageio
import numpy as np
import pytest

from ibc_core.data.episodes import iter_episodes, read_meta
from ibc_cli import data, evaluate
from sim.rollout import wilson_interval
from sim.tasks import EVAL_SEED_BASE


def test_generate_states_dataset_with_two_workers_matches_one_worker(tmp_path):
    assert data.main(["generate", "--task", "push_states", "--episodes", "3", "--out", str(tmp_path / "w2"),
                      "--workers", "2", "--seed", "5"]) == 0
    assert data.main(["generate", "--task", "push_states", "--episodes", "3", "--out", str(tmp_path / "w1"),
                      "--seed", "5"]) == 0
    meta = read_meta(tmp_path / "w2")
    assert meta["task"] == "push_states" and meta["control_hz"] == 5.0
    assert meta["action_low"] == [-0.1, -0.1] and meta["action_high"] == [0.1, 0.1]
    assert meta["observation_keys"] == ["state"]
    parallel, serial = list(iter_episodes(tmp_path / "w2")), list(iter_episodes(tmp_path / "w1"))
    assert [e.seed for e in parallel] == [5, 6, 7]
    for a, b in zip(parallel, serial):
        assert a.success and a.observations["state"].shape == (len(a), 10)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.observations["state"], b.observations["state"])
        assert np.abs(a.actions).max() <= 0.1


def test_generate_resumes_with_only_the_missing_seeds(tmp_path, capsys):
    out = str(tmp_path / "d")
    assert data.main(["generate", "--task", "push_states", "--episodes", "2", "--out", out, "--seed", "5"]) == 0
    first = [e.actions for e in iter_episodes(out)]
    assert data.main(["generate", "--task", "push_states", "--episodes", "3", "--out", out, "--seed", "5"]) == 0
    assert "2 of these seeds are already stored, 1 to run" in capsys.readouterr().out
    episodes = list(iter_episodes(out))
    assert [e.seed for e in episodes] == [5, 6, 7]
    for before, after in zip(first, episodes):
        np.testing.assert_array_equal(before, after.actions)   # untouched


def test_generate_pixel_dataset_stores_preprocessed_frames(tmp_path):
    assert data.main(["generate", "--task", "push_pixels", "--episodes", "1", "--out", str(tmp_path)]) == 0
    meta = read_meta(tmp_path)
    spec = meta["image_spec"]
    (episode,) = iter_episodes(tmp_path)
    assert episode.observations["rgb"].shape == (len(episode), spec["height"], spec["width"], 3)
    assert episode.observations["rgb"].dtype == np.uint8


def test_generate_refuses_evaluation_seeds(tmp_path, capsys):
    code = data.main(["generate", "--task", "push_states", "--episodes", "2", "--out", str(tmp_path),
                      "--seed", str(EVAL_SEED_BASE - 1)])
    assert code == 2 and "training seeds" in capsys.readouterr().err
    assert not (tmp_path / "meta.json").exists()


def test_eval_oracle_writes_json_with_wilson_interval_and_video(tmp_path):
    out_json, out_video = tmp_path / "eval.json", tmp_path / "eval.mp4"
    assert evaluate.main(["--oracle", "--task", "push_states", "--episodes", "2", "--json", str(out_json),
                          "--video", str(out_video), "--video-episodes", "1"]) == 0
    summary = json.loads(out_json.read_text())
    assert summary["successes"] == 2 and summary["seeds"] == [EVAL_SEED_BASE, EVAL_SEED_BASE + 2]
    low, high = summary["wilson95"]
    assert low == pytest.approx(0.342, abs=1e-3) and high == 1.0
    frames = imageio.mimread(out_video)
    assert len(frames) >= 2 and frames[0].shape == (180, 320, 3)


def test_wilson_interval_known_values():
    low, high = wilson_interval(95, 100)
    assert low == pytest.approx(0.8883, abs=1e-4) and high == pytest.approx(0.9785, abs=1e-4)


def test_eval_refuses_training_seeds():
    with pytest.raises(SystemExit):
        evaluate.main(["--oracle", "--task", "push_states", "--episodes", "1", "--seed", "0"])
