"""Recording size and image fidelity for each way the recorder can store camera frames: raw
sensor_msgs/Image (with and without zstd chunk compression) and sensor_msgs/CompressedImage PNG
or JPEG at several qualities (config/recorder.yaml image_format, jpeg_quality, compress).

--seconds of record_demos traffic at the cell's rates go through the recorder's own code
(EpisodeRecorder: queue, writer thread, compression, DurableBagWriter): camera frames at 30 Hz and
640x360 (the D415 stream) rendered by the PyBullet twin while the scripted push oracle pushes the
block (one render per 0.2 s control step, held for the six camera frames of that step),
joint_states / joint_command / ee_target at 100 Hz and setpoint_delta at 5 Hz, shaped as the
nodes send them. The renders are noise-free, and noise-free frames compress far better than a
real camera's: every run is repeated with fresh Gaussian noise on every frame (--noise, grey
levels; a stand-in for sensor noise, not a measurement of the D415).

Per variant: bag MB per minute of recording; the mean stored frame; the writer thread's
compression time per frame; and fidelity against the raw recording, as mean absolute error
(grey levels) and PSNR (dB) - at full resolution (each decoded frame against the frame sent)
and in the dataset (`ibc-data from-bags` of this bag against from-bags of the raw bag: what a
policy trains on). Identical frames report PSNR null and identical true.

    ./run.sh python -m bench.recording --seconds 60 --json bench/results/recording.json
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from bench.common import finish, machine, percentiles
from cell.recording.bag_io import BagReader, deserialize, rgb_image_bytes, serialize, stamped_header, typestore
from cell.recording.bag_to_dataset import IMAGE_DECODERS, convert_bags
from cell.recording.episodes import EVENTS_TOPIC, EVENTS_TYPE
from cell.recording.recorder import ImageCompression, EpisodeRecorder, RecorderConfig
from ibc_core.data.episodes import iter_episodes
from ibc_core.data.preprocess import ImageSpec

TASK = "push_pixels"
WIDTH, HEIGHT = 640, 360          # the D415 colour stream (DESIGN.md)
CAMERA_HZ, STATE_HZ, CONTROL_HZ = 30, 100, 5
TOPICS = {"/camera/image_raw": "sensor_msgs/msg/Image", "/joint_states": "sensor_msgs/msg/JointState",
          "/joint_command": "sensor_msgs/msg/JointState", "/ee_target": "geometry_msgs/msg/PoseStamped",
          "/setpoint_delta": "geometry_msgs/msg/Vector3Stamped", "/" + EVENTS_TOPIC: EVENTS_TYPE}
VARIANTS: dict[str, dict[str, Any]] = {
    "raw": {}, "raw_zstd": {"compress": True}, "png": {"image_format": "png"},
    "jpeg_q95": {"image_format": "jpeg", "jpeg_quality": 95}, "jpeg_q90": {"image_format": "jpeg", "jpeg_quality": 90},
    "jpeg_q80": {"image_format": "jpeg", "jpeg_quality": 80}}
NOISE_BANK = 30                   # distinct noise fields, cycled: consecutive frames never share one


def render_scenes(seconds: float, seed: int) -> list[np.ndarray]:
    """One 640x360 render per control step of oracle push episodes (the next seed when one ends)."""
    from sim.tasks import OraclePolicy, make_env
    env = make_env(TASK)
    oracle = OraclePolicy(env)
    scenes: list[np.ndarray] = []
    try:
        while len(scenes) < seconds * CONTROL_HZ:
            obs, done = env.reset(seed + len(scenes)), False
            oracle.reset()
            while not done and len(scenes) < seconds * CONTROL_HZ:
                scenes.append(env.world.render_rgb(WIDTH, HEIGHT))
                obs, done, _ = env.step(oracle.act(obs))
    finally:
        env.close()
    return scenes


class Camera:
    """Frame i at 30 Hz: the render of its control step, plus noise field i % NOISE_BANK."""

    def __init__(self, scenes: list[np.ndarray], noise: float, seed: int):
        self.scenes = scenes
        rng = np.random.default_rng(seed)
        self.noise = [np.rint(rng.normal(0.0, noise, scenes[0].shape)).astype(np.int16) for _ in range(NOISE_BANK)] \
            if noise > 0 else None
        self.count = len(scenes) * CAMERA_HZ // CONTROL_HZ

    def frame(self, index: int) -> np.ndarray:
        scene = self.scenes[index * CONTROL_HZ // CAMERA_HZ]
        if self.noise is None:
            return scene
        return np.clip(scene + self.noise[index % NOISE_BANK], 0, 255).astype(np.uint8)


def stamp(index: int, rate_hz: int) -> int:
    return 1_000_000_000 + index * 1_000_000_000 // rate_hz


def traffic(camera: Camera) -> Iterator[tuple[str, int, bytes]]:
    """(topic, log time, CDR) of the recording, in log-time order; setpoints carry the stamp of the
    frame they were computed from and a small push, so from-bags pairs each with that frame."""
    types = typestore().types
    joints = [f"joint{i}" for i in range(1, 7)]
    ticks = camera.count * STATE_HZ // CAMERA_HZ
    frames_sent = 0
    for tick in range(ticks):
        now = stamp(tick, STATE_HZ)
        while frames_sent < camera.count and stamp(frames_sent, CAMERA_HZ) <= now:
            yield "/camera/image_raw", stamp(frames_sent, CAMERA_HZ), rgb_image_bytes(
                camera.frame(frames_sent), stamp(frames_sent, CAMERA_HZ))
            frames_sent += 1
        positions = np.sin(np.arange(6) + tick / STATE_HZ)
        for topic in ("/joint_states", "/joint_command"):
            yield topic, now, serialize(types["sensor_msgs/msg/JointState"](
                header=stamped_header(now, ""), name=joints, position=positions, velocity=np.zeros(0),
                effort=np.zeros(0)), "sensor_msgs/msg/JointState")
        yield "/ee_target", now, serialize(types["geometry_msgs/msg/PoseStamped"](
            header=stamped_header(now, "link_base"), pose=types["geometry_msgs/msg/Pose"](
                position=types["geometry_msgs/msg/Point"](x=0.3, y=positions[0] * 0.1, z=0.1),
                orientation=types["geometry_msgs/msg/Quaternion"](x=1.0, y=0.0, z=0.0, w=0.0))),
            "geometry_msgs/msg/PoseStamped")
        if tick % (STATE_HZ // CONTROL_HZ) == STATE_HZ // CONTROL_HZ - 1:
            yield "/setpoint_delta", now, serialize(types["geometry_msgs/msg/Vector3Stamped"](
                header=stamped_header(stamp(frames_sent - 1, CAMERA_HZ), "link_base"),
                vector=types["geometry_msgs/msg/Vector3"](x=0.002, y=-0.001, z=0.0)), "geometry_msgs/msg/Vector3Stamped")


def record(camera: Camera, out: Path, settings: dict[str, Any]) -> tuple[Path, float]:
    """One episode of the traffic through EpisodeRecorder; (bag, wall seconds). The feed waits for
    the writer instead of letting the queue drop: every frame is in the bag."""
    now = [stamp(0, STATE_HZ)]
    recorder = EpisodeRecorder(RecorderConfig(output_dir=str(out), task=TASK, **settings), TOPICS,
                               clock_ns=lambda: now[0])
    began = time.perf_counter()
    episode = recorder.start()
    for topic, log_time, data in traffic(camera):
        now[0] = log_time
        while recorder.pending() > 64:
            time.sleep(0.0005)
        assert recorder.offer(topic, log_time, data)
    recorder.stop()
    recorder.close(timeout_s=600)
    assert not recorder.errors and recorder.stored_raw == 0, (recorder.errors, recorder.stored_raw_reason)
    return episode.path, time.perf_counter() - began


class Fidelity:
    """Pixel errors of uint8 frames against the frames sent, accumulated over a recording."""

    def __init__(self) -> None:
        self.squared = self.absolute = 0.0
        self.worst = self.count = 0

    def add(self, got: np.ndarray, want: np.ndarray) -> "Fidelity":
        error = got.astype(np.float64) - want.astype(np.float64)
        self.squared += float(np.sum(error ** 2))
        self.absolute += float(np.sum(np.abs(error)))
        self.worst, self.count = max(self.worst, int(np.max(np.abs(error)))), self.count + error.size
        return self

    def report(self) -> dict[str, Any]:
        mse = self.squared / self.count
        return {"mae": round(self.absolute / self.count, 4), "max_abs": self.worst,
                "psnr_db": round(10 * np.log10(255.0 ** 2 / mse), 2) if mse else None, "identical": mse == 0}


def full_resolution_fidelity(bag: Path, camera: Camera) -> tuple[dict[str, Any], float]:
    """Every stored frame decoded against the frame sent, and the mean stored frame in bytes."""
    errors, stored, frames = Fidelity(), 0, 0
    with BagReader(bag) as reader:
        topic = next(t for t in reader.topics if t.startswith("/camera/image_raw"))
        for index, message in enumerate(reader.messages([topic])):
            msg = deserialize(message.data, message.msgtype)
            stored += len(msg.data)
            errors.add(IMAGE_DECODERS[message.msgtype](msg), camera.frame(index))
            frames += 1
    assert frames == camera.count, f"{camera.count - frames} frames missing from the bag"
    return errors.report(), stored / frames


def dataset_frames(bag: Path, out: Path) -> np.ndarray:
    convert_bags([bag], out, ImageSpec(), TASK)
    (episode,) = iter_episodes(out)
    return episode.observations["rgb"]


def encode_times(camera: Camera, settings: dict[str, Any], samples: int) -> Optional[dict[str, float]]:
    """The writer thread's work per frame (decode CDR, encode, serialize), timed outside it."""
    if settings.get("image_format", "raw") == "raw":
        return None
    compress = ImageCompression(settings["image_format"], settings.get("jpeg_quality", 95))
    frames = [rgb_image_bytes(camera.frame(i), stamp(i, CAMERA_HZ)) for i in range(samples)]
    seconds = []
    for data in frames:
        began = time.perf_counter()
        compress(data)
        seconds.append(time.perf_counter() - began)
    return {k: round(v, 3) for k, v in percentiles(seconds).items()}


def run_noise_level(scenes: list[np.ndarray], noise: float, seconds: float, work: Path,
                    variants: Sequence[str], samples: int) -> dict[str, Any]:
    camera = Camera(scenes, noise, seed=1)
    results: dict[str, Any] = {}
    reference: np.ndarray | None = None
    for name in ["raw", *[v for v in variants if v != "raw"]]:
        settings = VARIANTS[name]
        bag, wall = record(camera, work / name, settings)
        size = sum(f.stat().st_size for f in bag.iterdir())
        frames = dataset_frames(bag, work / f"data_{name}")
        full, stored = full_resolution_fidelity(bag, camera)
        if reference is None:
            reference = frames
        assert frames.shape == reference.shape, (name, frames.shape, reference.shape)
        results[name] = {"settings": settings, "mb_per_minute": round(size / 1e6 / seconds * 60, 2),
                         "ratio_to_raw": None, "stored_frame_kb": round(stored / 1e3, 1),
                         "frames": camera.count, "dataset_frames": int(frames.shape[0]),
                         "write_wall_s": round(wall, 1), "encode_ms": encode_times(camera, settings, samples),
                         "fidelity_full_resolution": full,
                         "fidelity_dataset": Fidelity().add(frames, reference).report()}
        shutil.rmtree(work / name)
    for result in results.values():
        result["ratio_to_raw"] = round(results["raw"]["mb_per_minute"] / result["mb_per_minute"], 2)
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="recording length per variant")
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 2.0],
                        help="per-frame Gaussian noise levels (grey levels) to run")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--encode-samples", type=int, default=60, help="frames timed for encode_ms")
    parser.add_argument("--seed", type=int, default=0, help="first oracle episode seed")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    scenes = render_scenes(args.seconds, args.seed)
    report: dict[str, Any] = {"benchmark": "recording", "machine": machine(), "task": TASK,
                              "seconds": args.seconds, "frame": [WIDTH, HEIGHT], "camera_hz": CAMERA_HZ,
                              "dataset_image_spec": dataclasses.asdict(ImageSpec()), "results": {}}
    with tempfile.TemporaryDirectory(prefix="bench_recording_") as tmp:
        for noise in args.noise:
            work = Path(tmp) / f"noise_{noise:g}"
            report["results"][f"noise_{noise:g}"] = run_noise_level(
                scenes, noise, args.seconds, work, args.variants, min(args.encode_samples, len(scenes) * 6))
    finish(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
