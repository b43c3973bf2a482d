"""Recorder benchmark: can the episode writer keep up with 2 RGB-D cameras at 640x480, 30 fps?

    python benchmarks/recorder.py [--seconds 10] [--fps 30] [--cameras 2] [--height 480 --width 640]
                                  [--no-depth] [--dir DIR]

Prints JSON lines ``{"name", "figure", "value", "unit", "machine", "config"}``, side by side in one run:

1. ``recorder_paced_{sync,buffered_1s}``: ``EpisodeWriter.append`` driven by a wall-clock 30 fps tick
   for ``--seconds``, the way a camera delivers frames. A step that ends after the next tick is *late*;
   a tick that has fully passed before the recorder is ready is *dropped* (the camera would have
   overwritten that frame).
   Figures: frames/s sustained, MB/s of raw step bytes, MB/s on disk (blosc-zstd level 1), late, dropped.
   ``sync``: append returns once the step is published; ``buffered_1s``: ``buffer_s=1.0``, append returns
   once the step is queued and a writer thread writes batches (a crash loses at most 1 s).
2. ``recorder_unpaced_{sync,buffered_1s}``: the same writers as fast as they go (buffered: until ``finish``
   has written the queue): the headroom over the required rate.
3. ``codec_*``: each candidate codec on the same frames, one thread: milliseconds to compress one step (all cameras,
   RGB and depth), the steps per second one core could compress, and the compressed share of the raw bytes. The
   recorder's codec (blosc-zstd level 1, ``data_store.episodes``) is the candidate marked ``in_use``.
4. ``raw_disk``: the same raw step bytes written to one file with ``write`` + ``fsync`` at the end: what the
   disk itself takes, so the recorder's MB/s can be read against it.

With ``--beside trainer_worker_policy`` all of it runs beside a world-model trainer process with the Celery worker's
thread policy (``benchmarks/contention.py``; ``trainer_defaults``: torch's defaults at normal priority).

Frames are synthetic but camera-like (smooth scene + sensor noise, a moving object; depth a smooth surface
with noise in millimetres), so compression sees realistic, not trivial, content.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from contention import TRAINERS, trainer_beside

from data_store.episodes import EpisodeStore, EpisodeWriter
from data_store.measure import machine
from data_store.schema import Observation, RobotSpec


@dataclass(frozen=True)
class RecorderBenchConfig:
    seconds: float = 10.0
    fps: float = 30.0
    cameras: int = 2
    height: int = 480
    width: int = 640
    depth: bool = True
    pool: int = 30  # distinct synthetic frames cycled through (generating them is not what is measured)
    beside: str = "none"  # benchmarks/contention.py TRAINERS: a trainer process beside the recorder


def spec_for(cfg: RecorderBenchConfig) -> RobotSpec:
    names = [f"cam{i}" for i in range(cfg.cameras)]
    size = (cfg.height, cfg.width)
    return RobotSpec(
        action_dim=7,
        state_dim=8,
        action_low=(-1.0,) * 7,
        action_high=(1.0,) * 7,
        cameras=dict.fromkeys(names, size),
        depth_cameras=dict.fromkeys(names, size) if cfg.depth else {},
        fps=cfg.fps,
    )


def synthetic_steps(spec: RobotSpec, n: int, seed: int = 0) -> list[Observation]:
    """Camera-like frames: a smooth scene, a moving bright object, Gaussian sensor noise (sigma 3);
    depth: a tilted plane 600..1400 mm with 2 mm noise."""
    rng = np.random.default_rng(seed)
    h, w = next(iter(spec.cameras.values()))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w * 160 + 40, yy / h * 120 + 60, (xx + yy) / (w + h) * 100 + 50], -1)
    steps = []
    for t in range(n):
        cx, cy = w * (0.2 + 0.6 * t / n), h * 0.5
        blob = 120 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (h / 12) ** 2))
        images = {}
        for k, name in enumerate(spec.cameras):
            img = base + blob[..., None] + rng.normal(0, 3, base.shape).astype(np.float32) + 10 * k
            images[name] = np.clip(img, 0, 255).astype(np.uint8)
        depth = {
            name: np.clip(600 + 800 * yy / h + rng.normal(0, 2, yy.shape), 0, 65535).astype(np.uint16)
            for name in spec.depth_cameras
        }
        state = rng.uniform(-1, 1, spec.state_dim).astype(np.float32)
        steps.append(Observation(images=images, state=state, instruction="bench", timestamp=0.0, depth=depth or None))
    return steps


def step_bytes(obs: Observation) -> int:
    n = sum(a.nbytes for a in obs.images.values()) + sum(a.nbytes for a in (obs.depth or {}).values())
    return n + obs.state.nbytes + 7 * 4 + 8


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def record_paced(writer: EpisodeWriter, steps: list[Observation], cfg: RecorderBenchConfig) -> dict[str, float]:
    period = 1.0 / cfg.fps
    ticks = int(cfg.seconds * cfg.fps)
    action = np.zeros(7, np.float32)
    start = time.perf_counter() + 0.05
    written = late = dropped = 0
    tick = 0
    worst = 0.0
    while tick < ticks:
        deadline = start + tick * period
        now = time.perf_counter()
        if now < deadline:
            time.sleep(deadline - now)
        elif now >= deadline + period:  # this frame was replaced by the next before we could take it
            missed = min(int((now - deadline) / period), ticks - tick)
            dropped += missed
            tick += missed
            continue
        obs = steps[tick % len(steps)]
        obs.timestamp = deadline - start
        t0 = time.perf_counter()
        writer.append(obs, action)
        done = time.perf_counter()
        worst = max(worst, done - t0)
        written += 1
        if done > deadline + period:
            late += 1
        tick += 1
    elapsed = time.perf_counter() - start
    return {"written": written, "late": late, "dropped": dropped, "elapsed": elapsed, "worst_step_s": worst}


def record_unpaced(writer: EpisodeWriter, steps: list[Observation], n: int) -> float:
    action = np.zeros(7, np.float32)
    t0 = time.perf_counter()
    for i in range(n):
        obs = steps[i % len(steps)]
        obs.timestamp = float(i)
        writer.append(obs, action)
    return time.perf_counter() - t0


def raw_disk(path: Path, steps: list[Observation], n: int) -> float:
    """Seconds to write the raw bytes of ``n`` steps to one file and fsync it."""
    buffers = [
        [*(a.tobytes() for a in s.images.values()), *(a.tobytes() for a in (s.depth or {}).values())] for s in steps
    ]
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        for i in range(n):
            for b in buffers[i % len(buffers)]:
                f.write(b)
        f.flush()
        os.fsync(f.fileno())
    return time.perf_counter() - t0


CODECS = {  # name -> (blosc compressor, level, shuffle for RGB, shuffle for depth); None: stored raw
    "none": None,
    "blosc_lz4_1": ("lz4", 1, "noshuffle", "shuffle"),
    "blosc_zstd_1": ("zstd", 1, "noshuffle", "shuffle"),
    "blosc_zstd_3": ("zstd", 3, "noshuffle", "shuffle"),
    "blosc_lz4hc_5": ("lz4hc", 5, "noshuffle", "shuffle"),
}


def in_use() -> tuple[str, int, str, str]:
    """What the recorder writes (``data_store.episodes``' codecs), in ``CODECS``' terms."""
    from data_store.episodes import _DEPTH_CODEC, _IMAGE_CODEC

    return (_IMAGE_CODEC.cname.value, _IMAGE_CODEC.clevel, _IMAGE_CODEC.shuffle.value, _DEPTH_CODEC.shuffle.value)


def codec_costs(steps: list[Observation], repeats: int = 3) -> dict[str, tuple[float, float]]:
    """Per codec: (seconds to compress one step on one thread, compressed bytes / raw bytes)."""
    from numcodecs import Blosc, blosc

    blosc.set_nthreads(1)
    shuffles = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE}
    out = {}
    for name, codec in CODECS.items():
        if codec is None:
            out[name] = (0.0, 1.0)
            continue
        cname, level, rgb_shuffle, depth_shuffle = codec
        rgb = Blosc(cname=cname, clevel=level, shuffle=shuffles[rgb_shuffle])
        depth = Blosc(cname=cname, clevel=level, shuffle=shuffles[depth_shuffle])
        raw = packed = 0
        t0 = time.perf_counter()
        for _ in range(repeats):
            for obs in steps:
                for a in obs.images.values():
                    raw, packed = raw + a.nbytes, packed + len(rgb.encode(a))
                for a in (obs.depth or {}).values():
                    raw, packed = raw + a.nbytes, packed + len(depth.encode(a))
        out[name] = ((time.perf_counter() - t0) / (repeats * len(steps)), packed / raw)
    return out


def run(cfg: RecorderBenchConfig, root: Path) -> list[dict[str, Any]]:
    spec = spec_for(cfg)
    steps = synthetic_steps(spec, cfg.pool)
    per_step = step_bytes(steps[0])
    mb = 1e6
    config = {**asdict(cfg), "step_bytes": per_step, "codec": "blosc zstd level 1, one frame per chunk"}
    host = machine()
    results: list[dict[str, Any]] = []

    def emit(name: str, figure: str, value: float, unit: str, **extra: Any) -> None:
        row = {"name": name, "figure": figure, "value": round(value, 3), "unit": unit, "machine": host}
        row["config"] = {**config, **extra}
        results.append(row)
        print(json.dumps(row), flush=True)

    store = EpisodeStore(root / "store")
    ticks = int(cfg.seconds * cfg.fps)
    n = max(10, ticks // 2)
    for mode, buffer_s in (("sync", 0.0), ("buffered_1s", 1.0)):
        writer = store.create(spec, task="bench", instruction="bench", robot_id="bench", buffer_s=buffer_s)
        paced = record_paced(writer, steps, cfg)
        writer.finish(None)
        on_disk = dir_bytes(store.root / writer.episode_id)
        rate = paced["written"] / paced["elapsed"]
        name = f"recorder_paced_{mode}"
        emit(name, "frames_per_s", rate, "steps/s", required=cfg.fps, buffer_s=buffer_s)
        emit(name, "raw_throughput", rate * per_step / mb, "MB/s", buffer_s=buffer_s)
        ratio = round(on_disk / max(1, paced["written"] * per_step), 3)
        emit(
            name, "disk_throughput", on_disk / paced["elapsed"] / mb, "MB/s", buffer_s=buffer_s, compressed_ratio=ratio
        )
        emit(name, "late_frames", paced["late"], "frames", ticks=ticks, buffer_s=buffer_s)
        emit(name, "dropped_frames", paced["dropped"], "frames", ticks=ticks, buffer_s=buffer_s, target=0)
        emit(name, "worst_append", paced["worst_step_s"] * 1000, "ms", period_ms=round(1000 / cfg.fps, 2))

        writer = store.create(spec, task="bench", instruction="bench", robot_id="bench", buffer_s=buffer_s)
        t0 = time.perf_counter()
        record_unpaced(writer, steps, n)
        writer.finish(None)  # includes writing what is still queued
        seconds = time.perf_counter() - t0
        emit(f"recorder_unpaced_{mode}", "frames_per_s", n / seconds, "steps/s", steps=n, buffer_s=buffer_s)
        emit(f"recorder_unpaced_{mode}", "raw_throughput", n * per_step / seconds / mb, "MB/s", steps=n)
        shutil.rmtree(store.root / writer.episode_id)

    for name, (seconds, ratio) in codec_costs(steps).items():
        extra = {"in_use": CODECS[name] == in_use(), "compressed_ratio": round(ratio, 3)}
        emit(f"codec_{name}", "compress_per_step", seconds * 1000, "ms", period_ms=round(1000 / cfg.fps, 2), **extra)
        if seconds > 0:
            emit(f"codec_{name}", "steps_per_s_one_core", 1 / seconds, "steps/s", required=cfg.fps, **extra)

    seconds = raw_disk(root / "raw.bin", steps, n)
    emit("raw_disk", "write_fsync_throughput", n * per_step / seconds / mb, "MB/s", steps=n)
    emit("raw_disk", "frames_per_s_equivalent", n / seconds, "steps/s", steps=n)
    return results


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--cameras", type=int, default=2)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--no-depth", action="store_true")
    p.add_argument("--dir", type=Path, default=None, help="Where to write (default: a temporary folder, removed).")
    p.add_argument("--beside", default="none", choices=list(TRAINERS), help="A trainer process beside the recorder.")
    args = p.parse_args(argv)
    cfg = RecorderBenchConfig(
        args.seconds, args.fps, args.cameras, args.height, args.width, not args.no_depth, beside=args.beside
    )
    root = Path(tempfile.mkdtemp(prefix="recorder-bench-", dir=args.dir))
    try:
        with trainer_beside(args.beside):
            run(cfg, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
