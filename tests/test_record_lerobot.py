"""ibc-data export / import --format lerobot: LeRobotDataset v3.0 on real oracle episodes.

The export is read back with independent readers (pyarrow.parquet for every table, PyAV for the
MP4), round-tripped through the import, refused on bad inputs without writing anything, and the
imported dataset trains with ibc-train. The source dataset is three real push_pixels oracle
episodes with max_steps 35 and --keep-failed, so it holds both successes and failures."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cell.recording import lerobot
from ibc_cli import data
from ibc_core.checkpoint import read_checkpoint
from ibc_core.data.episodes import Episode, iter_episodes, read_meta
from ibc_core.policy import Policy
from tests.tiny_training import train_tiny_pixel_policy

CAMERA = "observation.images.camera"
# H.264 yuv420p at CRF 18 measured PSNR 41.5 dB and a mean absolute error of 0.64 (of 255) on
# push_pixels frames; 4:2:0 chroma halves the colour resolution, so the red block's edges
# dominate the error. 35 dB / 1.5 leave room for x264 builds, and still catch a wrong frame (a
# neighbouring frame of a moving push scores far below) or a colour-order swap.
MIN_PSNR_DB, MAX_MEAN_ABS_ERROR = 35.0, 1.5


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("source") / "push_pixels"
    assert data.main(["generate", "--task", "push_pixels", "--episodes", "3", "--out", str(out),
                      "--keep-failed", "task.max_steps=35"]) == 0
    outcomes = {episode.success for episode in iter_episodes(out)}
    assert outcomes == {True, False}, "the fixture should hold a success and a failure"
    return out


@pytest.fixture(scope="module")
def exported(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lerobot") / "push_pixels_lerobot"
    assert data.main(["export", "--format", "lerobot", str(dataset), "--out", str(out)]) == 0
    return out


def psnr(decoded: np.ndarray, original: np.ndarray) -> float:
    mse = np.mean((decoded.astype(np.float64) - original.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def decode_all(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of an MP4 (RGB) and its presentation time in seconds, straight from PyAV."""
    with av.open(str(path)) as container:
        frames = [(frame.time, frame.to_ndarray(format="rgb24")) for frame in container.decode(video=0)]
    return np.array([t for t, _ in frames]), np.stack([f for _, f in frames])


def test_export_is_a_v3_layout_that_pyarrow_and_pyav_read(dataset, exported, capsys):
    episodes = list(iter_episodes(dataset))
    info = json.loads((exported / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 5 and info["robot_type"] == "xarm6"
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert info["total_episodes"] == 3 and info["total_tasks"] == 1 and info["chunks_size"] == 1000
    assert info["total_frames"] == sum(len(e) for e in episodes)
    assert info["splits"] == {"train": "0:3"}
    features = info["features"]
    height, width = episodes[0].observations["rgb"].shape[1:3]
    assert features[CAMERA]["dtype"] == "video" and features[CAMERA]["shape"] == [height, width, 3]
    assert features[CAMERA]["info"]["video.codec"] == "h264" and features[CAMERA]["info"]["video.pix_fmt"] == "yuv420p"
    assert features["observation.state"] == {"dtype": "float32", "shape": [10], "names": None}
    assert features["action"] == {"dtype": "float32", "shape": [2], "names": None}

    table = pq.read_table(exported / "data/chunk-000/file-000.parquet")
    assert table.column_names == [k for k, f in features.items() if f["dtype"] != "video"]
    assert table.schema.field("observation.state").type == pa.list_(pa.float32(), 10)
    assert table.schema.field("action").type == pa.list_(pa.float32(), 2)
    assert table.schema.field("timestamp").type == pa.float32()
    for name in ("frame_index", "episode_index", "index", "task_index"):
        assert table.schema.field(name).type == pa.int64()
    assert table.schema.field("next.done").type == table.schema.field("next.success").type == pa.bool_()
    assert table.num_rows == info["total_frames"]
    np.testing.assert_array_equal(table.column("index").to_numpy(), np.arange(table.num_rows))

    rows = pq.read_table(exported / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    tasks = pq.read_table(exported / "meta/tasks.parquet").to_pylist()
    assert tasks == [{"task_index": 0, "task": "push_pixels"}]
    times, frames = decode_all(exported / f"videos/{CAMERA}/chunk-000/file-000.mp4")
    assert len(frames) == info["total_frames"]
    np.testing.assert_allclose(times, np.arange(len(times)) / 5, atol=1e-6)
    scores = []
    for number, (row, episode) in enumerate(zip(rows, episodes)):
        assert row["episode_index"] == number and row["length"] == len(episode) and row["tasks"] == ["push_pixels"]
        first, last = row["dataset_from_index"], row["dataset_to_index"]
        assert last - first == len(episode) and first == sum(len(e) for e in episodes[:number])
        steps = table.slice(first, last - first)
        assert set(steps.column("episode_index").to_pylist()) == {number}
        assert steps.column("frame_index").to_pylist() == list(range(len(episode)))
        np.testing.assert_array_equal(steps.column("timestamp").to_numpy(),
                                      (np.arange(len(episode)) / 5).astype(np.float32))
        state = np.array(steps.column("observation.state").to_pylist(), np.float32)
        np.testing.assert_array_equal(state, episode.observations["state"])
        np.testing.assert_array_equal(np.array(steps.column("action").to_pylist(), np.float32), episode.actions)
        assert steps.column("next.done").to_pylist() == [False] * (len(episode) - 1) + [True]
        assert steps.column("next.success").to_pylist() == [False] * (len(episode) - 1) + [episode.success]
        start = row[f"videos/{CAMERA}/from_timestamp"]
        assert start == pytest.approx(first / 5) and row[f"videos/{CAMERA}/to_timestamp"] == pytest.approx(last / 5)
        mine = frames[(times >= start - 0.1) & (times < row[f"videos/{CAMERA}/to_timestamp"] - 0.1)]
        scores.append((psnr(mine, episode.observations["rgb"]),
                       np.abs(mine.astype(float) - episode.observations["rgb"]).mean()))
        assert row["stats/action/count"] == [len(episode)]
        np.testing.assert_allclose(row["stats/action/max"], episode.actions.max(0), rtol=1e-6)
        assert np.array(row[f"stats/{CAMERA}/mean"]).shape == (3, 1, 1)
    with capsys.disabled():
        print("\nLeRobot export, per episode (PSNR dB, mean abs error):",
              ", ".join(f"({p:.2f}, {e:.3f})" for p, e in scores))
    assert min(p for p, _ in scores) > MIN_PSNR_DB and max(e for _, e in scores) < MAX_MEAN_ABS_ERROR

    stats = json.loads((exported / "meta/stats.json").read_text())
    all_actions = np.concatenate([e.actions for e in episodes])
    np.testing.assert_allclose(stats["action"]["mean"], all_actions.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["action"]["std"], all_actions.std(0), rtol=1e-4)
    assert stats["action"]["count"] == [info["total_frames"]]
    pixels = np.concatenate([e.observations["rgb"] for e in episodes]).reshape(-1, 3) / 255.0
    np.testing.assert_allclose(np.array(stats[CAMERA]["mean"]).reshape(3), pixels.mean(0), rtol=1e-6)
    assert 0.0 <= np.min(stats[CAMERA]["min"]) and np.max(stats[CAMERA]["max"]) <= 1.0


def assert_same_episodes(imported: list[Episode], original: list[Episode]) -> None:
    assert [len(e) for e in imported] == [len(e) for e in original]
    for mine, theirs in zip(imported, original):
        np.testing.assert_array_equal(mine.actions, theirs.actions)
        np.testing.assert_array_equal(mine.observations["state"], theirs.observations["state"])
        assert mine.observations["rgb"].shape == theirs.observations["rgb"].shape
        assert psnr(mine.observations["rgb"], theirs.observations["rgb"]) > MIN_PSNR_DB
        assert mine.success == theirs.success


def test_round_trip_gives_the_same_episodes(dataset, exported, tmp_path):
    out = tmp_path / "back"
    assert data.main(["import", "--format", "lerobot", str(exported), "--out", str(out)]) == 0
    imported, original = list(iter_episodes(out)), list(iter_episodes(dataset))
    assert_same_episodes(imported, original)
    assert [(e.seed, e.info) for e in imported] == [(e.seed, e.info) for e in original]
    meta, source = read_meta(out), read_meta(dataset)
    assert meta["lerobot"]["path"] == str(exported)
    assert {k: v for k, v in meta.items() if k != "lerobot"} == source


def rename_feature(root: Path, old: str, new: str) -> None:
    """Rename a feature everywhere a LeRobot folder names it, as another producer's keys would be."""
    info = json.loads((root / "meta/info.json").read_text())
    info["features"] = {new if k == old else k: v for k, v in info["features"].items()}
    (root / "meta/info.json").write_text(json.dumps(info))
    for path in [*root.glob("data/*/*.parquet"), *root.glob("meta/episodes/*/*.parquet")]:
        table = pq.read_table(path)
        pq.write_table(table.rename_columns([n.replace(old, new) for n in table.column_names]), path)
    if (root / "videos" / old).exists():
        (root / "videos" / old).rename(root / "videos" / new)


def test_import_of_another_producers_dataset_chooses_keys(dataset, exported, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    shutil.copytree(exported, foreign)
    (foreign / "meta/ibc_ros.json").unlink()     # what any LeRobot dataset lacks
    rename_feature(foreign, "observation.state", "observation.joints")
    rename_feature(foreign, CAMERA, "observation.images.top")
    out = tmp_path / "imported"
    assert data.main(["import", "--format", "lerobot", str(foreign), "--out", str(out),
                      "--state-key", "observation.joints"]) == 0
    assert "rgb <- observation.images.top" in capsys.readouterr().out
    imported, original = list(iter_episodes(out)), list(iter_episodes(dataset))
    assert_same_episodes(imported, original)
    meta = read_meta(out)
    assert meta["task"] == "push_pixels" and meta["control_hz"] == 5.0 and meta["source"] == "lerobot"
    assert meta["observation_keys"] == ["rgb", "state"] and meta["state_dim"] == 10
    actions = np.concatenate([e.actions for e in original])
    np.testing.assert_allclose(meta["action_low"], actions.min(0), rtol=1e-6)
    np.testing.assert_allclose(meta["action_high"], actions.max(0), rtol=1e-6)
    assert meta["image_spec"] == {"height": 60, "width": 128, "crop": [0.0, 0.0, 1.0, 1.0]}
    assert [e.seed for e in imported] == [-1, -1, -1]
    images_only = tmp_path / "images_only"
    assert data.main(["import", "--format", "lerobot", str(foreign), "--out", str(images_only)]) == 0
    assert read_meta(images_only)["observation_keys"] == ["rgb"]   # auto: no observation.state there


def test_a_states_only_dataset_has_no_video(tmp_path):
    source, exported, back = tmp_path / "states", tmp_path / "states_lerobot", tmp_path / "back"
    assert data.main(["generate", "--task", "push_states", "--episodes", "2", "--out", str(source)]) == 0
    assert data.main(["export", "--format", "lerobot", str(source), "--out", str(exported)]) == 0
    info = json.loads((exported / "meta/info.json").read_text())
    assert info["video_path"] is None and not (exported / "videos").exists()
    assert [k for k, f in info["features"].items() if f["dtype"] == "video"] == []
    assert data.main(["import", "--format", "lerobot", str(exported), "--out", str(back)]) == 0
    for mine, theirs in zip(iter_episodes(back), iter_episodes(source), strict=True):
        np.testing.assert_array_equal(mine.actions, theirs.actions)
        np.testing.assert_array_equal(mine.observations["state"], theirs.observations["state"])
        assert "rgb" not in mine.observations
    assert read_meta(back)["observation_keys"] == ["state"]


def test_episodes_spread_over_several_files_import_in_order(dataset, tmp_path, monkeypatch):
    """A file per episode (size limits of 0 MB): chunk/file indices and per-file video timestamps."""
    monkeypatch.setattr(lerobot, "DATA_FILE_MB", 0)
    monkeypatch.setattr(lerobot, "VIDEO_FILE_MB", 0)
    exported = tmp_path / "split"
    lerobot.export_lerobot(dataset, exported, progress=False)
    rows = pq.read_table(exported / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [(r["data/file_index"], r[f"videos/{CAMERA}/file_index"], r[f"videos/{CAMERA}/from_timestamp"])
            for r in rows] == [(0, 0, 0.0), (1, 1, 0.0), (2, 2, 0.0)]
    assert len(list(exported.glob("data/chunk-000/*.parquet"))) == 3
    lerobot.import_lerobot(exported, tmp_path / "back", progress=False)
    assert_same_episodes(list(iter_episodes(tmp_path / "back")), list(iter_episodes(dataset)))


def write_shorter_video(path: Path, frames: np.ndarray) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=5)
        stream.height, stream.width, stream.pix_fmt = frames.shape[1], frames.shape[2], "yuv420p"
        for number, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = number
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def v21(root: Path) -> None:
    info = json.loads((root / "meta/info.json").read_text())
    (root / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))


def truncated_video(root: Path) -> None:
    video = root / f"videos/{CAMERA}/chunk-000/file-000.mp4"
    _, frames = decode_all(video)
    write_shorter_video(video, frames[:-3])


@pytest.mark.parametrize("spoil, words, message", [
    (None, ["--state-key", "observation.velocity"],
     "no float vector feature 'observation.velocity' for the state; "
     "its vector features: ['observation.state', 'action']"),
    (None, ["--image-key", "observation.images.wrist"],
     "no camera feature 'observation.images.wrist'; its cameras: ['observation.images.camera']"),
    (v21, [], "codebase_version 'v2.1' is not v3.x"),
    (lambda root: shutil.rmtree(root), [], "no such folder"),
    (truncated_video, [], "episode 2: "),
])
def test_import_refuses_bad_input_and_writes_nothing(exported, tmp_path, capsys, spoil, words, message):
    source = tmp_path / "source"
    shutil.copytree(exported, source)
    if spoil is not None:
        spoil(source)
    out = tmp_path / "out"
    assert data.main(["import", "--format", "lerobot", str(source), "--out", str(out), *words]) == 2
    error = capsys.readouterr().err
    assert any(line.startswith("ibc-data: error: ") and message in line for line in error.splitlines()), error
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["source"][:int(source.exists())]


@pytest.mark.parametrize("command", ["import", "export"])
def test_a_non_empty_out_is_refused_and_kept(dataset, exported, tmp_path, capsys, command):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    source = exported if command == "import" else dataset
    assert data.main([command, "--format", "lerobot", str(source), "--out", str(out)]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and [p.name for p in out.iterdir()] == ["notes.txt"]


def test_export_of_a_missing_dataset_names_it(tmp_path, capsys):
    assert data.main(["export", "--format", "lerobot", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "is not a dataset" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_ibc_train_trains_on_the_imported_dataset(exported, tmp_path):
    imported = tmp_path / "imported"
    lerobot.import_lerobot(exported, imported, progress=False)
    checkpoint = train_tiny_pixel_policy(imported, tmp_path / "run", 2)
    assert read_checkpoint(checkpoint)["step"] == 2
    policy = Policy.load(checkpoint, device="cpu")
    assert policy.task == "push_pixels" and policy.observation_keys == ("rgb",)
    action = policy.act({"rgb": np.zeros((180, 320, 3), np.uint8)})
    assert action.shape == (2,) and np.all(np.abs(action) <= 0.1 + 1e-6)
