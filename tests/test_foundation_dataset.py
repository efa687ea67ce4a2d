"""The dataset format and the shared image preprocessing."""
from __future__ import annotations

import numpy as np
import pytest

from ibc_core.data.episodes import DatasetError, DatasetWriter, Episode, iter_episodes, read_episode, read_meta
from ibc_core.data.preprocess import ImageSpec, preprocess_image


def _episode(steps: int, rng: np.random.Generator) -> Episode:
    return Episode(actions=rng.normal(size=(steps, 2)).astype(np.float32),
                   observations={"state": rng.normal(size=(steps, 10)).astype(np.float32),
                                 "rgb": rng.integers(0, 255, size=(steps, 8, 12, 3), dtype=np.uint8)},
                   success=True, seed=7, info={"source": "test"})


def test_round_trip_and_resume(tmp_path):
    rng = np.random.default_rng(0)
    written = [_episode(5, rng), _episode(3, rng)]
    writer = DatasetWriter(tmp_path, {"task": "push_states"})
    writer.add(written[0])
    DatasetWriter(tmp_path, {"task": "push_states"}).add(written[1])  # resumes numbering
    assert read_meta(tmp_path)["task"] == "push_states"
    loaded = list(iter_episodes(tmp_path))
    assert len(loaded) == 2
    for a, b in zip(written, loaded):
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.observations["rgb"], b.observations["rgb"])
        assert b.success and b.seed == 7 and b.info == {"source": "test"}


def test_bad_input_is_rejected_and_nothing_is_written(tmp_path):
    writer = DatasetWriter(tmp_path, {"task": "push_states"})
    bad = Episode(actions=np.full((3, 2), np.nan, np.float32),
                  observations={"state": np.zeros((3, 10), np.float32)}, success=False)
    with pytest.raises(DatasetError, match="NaN"):
        writer.add(bad)
    short = Episode(actions=np.zeros((3, 2), np.float32),
                    observations={"state": np.zeros((2, 10), np.float32)}, success=False)
    with pytest.raises(DatasetError, match="2 steps"):
        writer.add(short)
    assert not list((tmp_path / "episodes").iterdir())
    with pytest.raises(DatasetError, match="differ"):
        DatasetWriter(tmp_path, {"task": "push_pixels"})


def test_truncated_episode_names_the_file(tmp_path):
    writer = DatasetWriter(tmp_path, {"task": "push_states"})
    path = writer.add(_episode(4, np.random.default_rng(1)))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DatasetError, match=path.name):
        read_episode(path)


def test_preprocess_crops_fractions_and_resizes():
    frame = np.zeros((360, 640, 3), np.uint8)
    frame[:, 320:] = 200  # right half bright
    spec = ImageSpec(height=36, width=32, crop=(0.5, 0.0, 1.0, 1.0))
    out = preprocess_image(frame, spec)
    assert out.shape == (36, 32, 3) and out.dtype == np.uint8
    assert np.all(out == 200)
    # The same view rendered at half resolution gives the same policy input.
    half = frame[::2, ::2]
    np.testing.assert_array_equal(preprocess_image(half, spec), out)
    with pytest.raises(ValueError, match="RGB uint8"):
        preprocess_image(np.zeros((360, 640), np.uint8), spec)
    with pytest.raises(ValueError, match="RGB uint8"):
        preprocess_image(np.zeros((0, 0, 3), np.uint8), spec)
