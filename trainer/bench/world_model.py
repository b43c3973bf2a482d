"""World-model speed, side by side with the simulator it stands in for, in one run (issue 4, "Speed").

Figures (JSON lines ``{"name", "figure", "value", "unit", "machine", "config"}``):
- ``sim/<task>``: Meta-World step + render at the same resolution, one environment (what one real-sim worker
  gives), frames/s;
- ``world_model/imagine``: imagined frames/s, B trajectories stepped together chunk by chunk, per sampling-step
  count, and the ratio to the simulator;
- ``world_model/train``: training steps/s (and chunk windows/s) at the default batch;
- ``*/peak_rss``: the process's peak resident memory after each phase.
The simulator's frames seed the world model's context and the training windows, so no phase is synthetic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from data_store.measure import machine, peak_rss_mib


@dataclass(frozen=True)
class BenchConfig:
    model: str | None = None  # a trained world model; None: an untrained one of ``preset``
    preset: str = "small"
    batch: int = 64
    sampling_steps: tuple[int, ...] = (1, 2, 4)
    task: str = "drawer-close"
    seconds: float = 5.0
    train_steps: int = 5
    train_batch: int = 16
    image_size: tuple[int, int] = (64, 64)


def _machine() -> dict[str, Any]:
    return {**machine(), "torch_threads": torch.get_num_threads()}


def sim_rate(task: str, image_size: tuple[int, int], seconds: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Step + render frames/s of one ``MetaWorldArm``, random actions; -> (rate, frames [T,H,W,3], actions [T,A])."""
    from sim.env import MetaWorldArm

    rng = np.random.default_rng(0)
    frames, actions = [], []
    with MetaWorldArm(task, image_size=image_size, seed=0) as arm:
        obs = arm.reset(0)
        cam = arm.camera
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < seconds or n < 16:
            a = rng.uniform(-1, 1, 4).astype(np.float32)
            frames.append(obs.images[cam])
            actions.append(a)
            obs = arm.step(a)
            n += 1
            if arm.truncated:
                obs = arm.reset(n)
        rate = n / (time.perf_counter() - start)
    return rate, np.stack(frames), np.stack(actions)


def imagine_rate(wm: Any, frames: np.ndarray, batch: int, seconds: float) -> float:
    """Imagined frames/s of B trajectories stepped together, started from real sim frames."""
    c = wm.config.context_frames
    ctx = np.stack([frames[i % (len(frames) - c) : i % (len(frames) - c) + c] for i in range(batch)])
    state = wm.reset(ctx)
    k, a_dim = wm.chunk_size, wm.config.action_dim
    rng = np.random.default_rng(0)
    wm.step(state, rng.uniform(-1, 1, (batch, k, a_dim)).astype(np.float32))  # warm-up
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds or n == 0:
        _, state = wm.step(state, rng.uniform(-1, 1, (batch, k, a_dim)).astype(np.float32))
        n += batch * k
    return n / (time.perf_counter() - start)


def run_bench(cfg: BenchConfig, echo: Callable[[str], None] | None = print) -> list[dict[str, Any]]:
    import json

    from trainer.world_model import PRESETS, PixelWorldModel, RecordedEpisode
    from trainer.world_model.network import ChunkDenoiser

    rows: list[dict[str, Any]] = []
    mach = _machine()

    def emit(name: str, figure: str, value: float, unit: str, **config: Any) -> None:
        row = {"name": name, "figure": figure, "value": value, "unit": unit, "machine": mach, "config": config}
        rows.append(row)
        if echo:
            echo(json.dumps(row))

    base = {k: v for k, v in asdict(cfg).items() if k not in ("sampling_steps",)}
    sim_fps, frames, actions = sim_rate(cfg.task, cfg.image_size, cfg.seconds)
    emit(f"sim/{cfg.task}", "step_render_rate", sim_fps, "frames/s", **base)
    emit(f"sim/{cfg.task}", "peak_rss", peak_rss_mib(), "MiB", **base)

    if cfg.model:
        wm = PixelWorldModel.load(cfg.model)  # this bench measures the pixel-space model itself
    else:
        if cfg.preset not in PRESETS:
            raise ValueError(f"unknown preset {cfg.preset!r}; known: {', '.join(PRESETS)}")
        torch.manual_seed(0)
        wm = PixelWorldModel(ChunkDenoiser(PRESETS[cfg.preset].replace(image_size=cfg.image_size)))
    params = wm.num_parameters()
    for steps in cfg.sampling_steps:
        wm.sampling_steps = steps
        fps = imagine_rate(wm, frames, cfg.batch, cfg.seconds)
        emit("world_model/imagine", "frames_per_s", fps, "frames/s", sampling_steps=steps, params=params, **base)
        emit("world_model/imagine", "ratio_to_sim", fps / sim_fps, "x", sampling_steps=steps, params=params, **base)
    emit("world_model/imagine", "peak_rss", peak_rss_mib(), "MiB", params=params, **base)

    per_step = train_step_seconds(wm.config, RecordedEpisode("bench", cfg.task, "bench", frames, actions, None), cfg)
    emit(
        "world_model/train",
        "steps_per_s",
        1.0 / per_step,
        "steps/s",
        params=params,
        **base,
    )
    emit(
        "world_model/train",
        "windows_per_s",
        cfg.train_batch / per_step,
        "chunks/s",
        **base,
    )
    emit("world_model/train", "peak_rss", peak_rss_mib(), "MiB", **base)
    return rows


def train_step_seconds(config: Any, episode: Any, cfg: BenchConfig) -> float:
    """Seconds per optimizer step (batch sampling, loss, backward, AdamW), after one warm-up step."""
    from trainer.world_model.data import ChunkWindows
    from trainer.world_model.flow import flow_loss
    from trainer.world_model.model import frames_to_tensor
    from trainer.world_model.network import ChunkDenoiser

    net = ChunkDenoiser(config).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    windows = ChunkWindows([episode], config.chunk_size, config.memory_frames)
    rng = np.random.default_rng(0)

    def step() -> None:
        ctx, act, tgt = windows.batch(rng, cfg.train_batch)
        loss = flow_loss(net, frames_to_tensor(ctx), frames_to_tensor(tgt), torch.from_numpy(act), config.context_noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    start = time.perf_counter()
    for _ in range(cfg.train_steps):
        step()
    return (time.perf_counter() - start) / cfg.train_steps
