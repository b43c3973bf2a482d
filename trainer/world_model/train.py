"""Training the world model from recorded episodes: pretrain on everything, fine-tune on the policy's own rollouts.

WMPO §3.2 "policy behaviour alignment": after pretraining, fine-tune on the current policy's real rollouts,
successes and failures alike, so that the imagined world also fails the way the real one does. Both are the same
loop here; ``finetune_from`` starts from a trained model (its architecture and action statistics) with a fresh
optimizer.

Departures from WMPO Table 3 (AdamW, lr 1e-4, batch 128, grad-clip 0.1, EMA 0.9999, target ε): we train from
scratch on a CPU, so lr 5e-4 with a short warm-up and cosine decay, batch 8, grad-clip 1.0 (the released
config), no EMA, x_0 target (see network.py).

Crash safety: every ``checkpoint_every`` steps the weights, the optimizer and the step go to ``OUT/checkpoint``
(atomically); ``resume=True`` continues from there. Randomness is a pure function of (seed, step), so a resumed
run draws the same batches as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.world_model.checkpoint import finish_interrupted_write, load_optimizer, read_model_dir, write_model_dir
from trainer.world_model.config import PRESETS, WorldModelConfig
from trainer.world_model.data import ChunkWindows, RecordedEpisode, load_episodes
from trainer.world_model.flow import flow_loss, sampler_times
from trainer.world_model.model import KIND, PixelWorldModel, frames_to_tensor
from trainer.world_model.network import ChunkDenoiser

CHECKPOINT_DIR = "checkpoint"


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1500  # ~16 min for the small preset at batch 8 on one busy CPU core
    batch_size: int = 8
    lr: float = 5e-4
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    checkpoint_every: int = 200
    log_every: int = 25
    seed: int = 0
    # share of each batch trained at the sampler's own times (t = 1, ...; flow.training_times): the logit-normal
    # alone almost never draws t near 1, where a 1–2 step sampler starts
    anchor_share: float = 0.5


@dataclass
class TrainResult:
    model: PixelWorldModel
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, mean loss since the last log)
    steps: int = 0
    seconds: float = 0.0


def fit_action_stats(episodes: Sequence[RecordedEpisode]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-dimension mean and std of the recorded actions (std floored so a constant dimension stays finite)."""
    a = np.concatenate([e.actions for e in episodes]).astype(np.float64)
    return tuple(a.mean(0).tolist()), tuple(np.maximum(a.std(0), 1e-2).tolist())


def _lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10 %."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def frame_size(episodes: Sequence[RecordedEpisode]) -> tuple[int, int]:
    """(H, W) of the episodes' frames; a ValueError naming them when they differ."""
    sizes = {tuple(int(x) for x in e.frames.shape[1:3]) for e in episodes}
    if len(sizes) != 1:
        raise ValueError(f"the episodes' frames differ in size ({sorted(sizes)}): record every episode at one size")
    h, w = sizes.pop()
    return h, w


def _starting_point(
    episodes: Sequence[RecordedEpisode],
    ckpt: Path,
    config: WorldModelConfig | None,
    finetune_from: str | Path | PixelWorldModel | None,
    resume: bool,
) -> tuple[dict[str, torch.Tensor] | None, WorldModelConfig]:
    """The weights (None: fresh) and config to train from: the run's checkpoint, a trained model, or scratch."""
    if resume and (ckpt / "train_state.json").exists():
        weights, cfg_json, _ = read_model_dir(ckpt, KIND)
        return weights, WorldModelConfig.from_json(cfg_json)
    if isinstance(finetune_from, PixelWorldModel):
        return finetune_from.net.state_dict(), finetune_from.config
    if finetune_from is not None:
        weights, cfg_json, _ = read_model_dir(finetune_from, KIND)
        return weights, WorldModelConfig.from_json(cfg_json)
    cfg = config or WorldModelConfig()
    mean, std = fit_action_stats(episodes)
    # the frame size and the action space come from the episodes, never from the preset
    return None, cfg.replace(action_mean=mean, action_std=std, action_dim=len(mean), image_size=frame_size(episodes))


def _check_frame_size(episodes: Sequence[RecordedEpisode], cfg: WorldModelConfig) -> None:
    if frame_size(episodes) != tuple(cfg.image_size):
        h, w = frame_size(episodes)
        raise ValueError(
            f"the episodes' frames are {h}x{w}, the world model's {cfg.image_size[0]}x{cfg.image_size[1]}: "
            "fine-tune a model trained at this frame size, or train one from scratch"
        )


def _train_step(
    net: ChunkDenoiser,
    opt: torch.optim.Optimizer,
    windows: ChunkWindows,
    cfg: WorldModelConfig,
    train: TrainConfig,
    step: int,
) -> float:
    """One optimizer step on the batch of ``step`` (a pure function of the seed and the step); returns its loss."""
    rng = np.random.default_rng([train.seed, step])
    gen = torch.Generator().manual_seed(train.seed * 1_000_003 + step)
    ctx, act, tgt = windows.batch(rng, train.batch_size)
    for g in opt.param_groups:
        g["lr"] = _lr_at(step, train)
    device = next(net.parameters()).device  # the CPU, or the GPU the network was moved to
    mean_t = torch.tensor(cfg.action_mean or (0.0,) * cfg.action_dim, device=device)
    std_t = torch.tensor(cfg.action_std or (1.0,) * cfg.action_dim, device=device)
    loss = flow_loss(
        net,
        frames_to_tensor(ctx).to(device),
        frames_to_tensor(tgt).to(device),
        (torch.from_numpy(act).to(device) - mean_t) / std_t,
        cfg.context_noise,
        gen,
        anchors=sampler_times(cfg.sampling_steps),
        anchor_share=train.anchor_share,
    )
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), train.grad_clip)
    opt.step()
    return float(loss.detach())


def fit_world_model(
    episodes: Sequence[RecordedEpisode],
    out: str | Path,
    *,
    config: WorldModelConfig | None = None,
    train: TrainConfig = TrainConfig(),
    finetune_from: str | Path | PixelWorldModel | None = None,
    resume: bool = False,
    manifest: dict[str, Any] | None = None,
    on_log: Callable[[int, float], None] | None = None,
    progress: bool = True,
    context_noise: float | None = None,
) -> TrainResult:
    """Train on ``episodes`` and write the model to ``out`` (safetensors + config.json + manifest.json)."""
    out = Path(out)
    ckpt = out / CHECKPOINT_DIR
    start_step = 0
    if resume:
        finish_interrupted_write(ckpt)  # a worker killed while writing its checkpoint
    weights, cfg = _starting_point(episodes, ckpt, config, finetune_from, resume)
    if context_noise is not None:  # a training-only setting: it may change when fine-tuning a trained model
        cfg = cfg.replace(context_noise=context_noise)
    torch.manual_seed(train.seed)
    net = ChunkDenoiser(cfg)
    if weights is not None:
        net.load_state_dict(weights)
    opt = torch.optim.AdamW(net.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    if resume and (ckpt / "train_state.json").exists():
        start_step = int(load_optimizer(opt, ckpt)["step"])

    _check_frame_size(episodes, cfg)
    windows = ChunkWindows(episodes, cfg.chunk_size, cfg.memory_frames)
    info = {
        "run": {"finetune_from": _describe(finetune_from), "train": dict(train.__dict__)},
        "dataset": {"episodes": len(episodes), "windows": len(windows), "ids": sorted(e.episode_id for e in episodes)},
        # every episode this model or its parents trained on: what a fair test must leave out
        "seen_ids": sorted({e.episode_id for e in episodes} | set(_parent_seen(finetune_from))),
        **(manifest or {}),
    }
    result = TrainResult(model=PixelWorldModel(net))
    t0, running, n_running = time.time(), 0.0, 0

    def checkpoint(step: int) -> None:
        write_model_dir(ckpt, net, cfg.to_json(), kind=KIND, manifest=info, optimizer=opt, train_state={"step": step})

    bar = _progress(progress)
    with bar:
        task = bar.add_task("world model", total=train.steps, completed=start_step)
        net.train()
        for step in range(start_step, train.steps):
            loss = _train_step(net, opt, windows, cfg, train, step)
            running += loss
            n_running += 1
            if (step + 1) % train.checkpoint_every == 0:
                checkpoint(step + 1)
            if (step + 1) % train.log_every == 0 or step + 1 == train.steps:
                result.losses.append((step + 1, running / n_running))
                if on_log:
                    on_log(step + 1, running / n_running)
                running, n_running = 0.0, 0
            bar.update(task, completed=step + 1, description=f"world model loss {loss:.4f}")
        if train.steps > start_step:
            checkpoint(train.steps)
    net.eval()
    result.steps, result.seconds = train.steps - start_step, time.time() - t0
    result.model = PixelWorldModel(net)
    result.model.save(out, manifest={**info, "losses": result.losses[-20:]})
    return result


def train_world_model(
    store: Any,  # data_store.episodes.EpisodeStore or its root folder
    out: str | Path,
    *,
    task: str | None = None,
    policy_version: str | None = None,
    robot_id: str | None = None,
    episode_ids: Sequence[str] | None = None,
    camera: str | None = None,
    preset: str = "small",
    steps: int | None = None,
    finetune_from: str | Path | PixelWorldModel | None = None,
    init: str | Path | PixelWorldModel | None = None,
    resume: bool = False,
    progress: bool = False,
) -> PixelWorldModel:
    """Pretrain (or, with ``finetune_from``/``init``, fine-tune) on the store's complete episodes that match the
    filters; -> the trained model, also saved to ``out``. ``init`` is another name for ``finetune_from``."""
    episodes = load_episodes(
        store, camera=camera, task=task, policy_version=policy_version, robot_id=robot_id, episode_ids=episode_ids
    )
    if not episodes:
        raise ValueError(f"no complete episodes in the store match task={task!r} policy_version={policy_version!r}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    train = TrainConfig() if steps is None else TrainConfig(steps=steps, warmup_steps=min(100, max(1, steps // 10)))
    result = fit_world_model(
        episodes,
        out,
        config=PRESETS[preset],
        train=train,
        finetune_from=finetune_from or init,
        resume=resume,
        progress=progress,
    )
    return result.model


def _parent_seen(source: object) -> list[str]:
    """Episode ids the parent model (a directory) trained on, from its manifest; [] when unknown."""
    if source is None or isinstance(source, PixelWorldModel):
        return []
    manifest = json.loads((Path(str(source)) / "manifest.json").read_text())
    return list(manifest.get("seen_ids") or manifest.get("dataset", {}).get("ids", []))


def _describe(source: object) -> str | None:
    if source is None:
        return None
    if isinstance(source, PixelWorldModel):
        return "in-memory model"
    return str(source)


def _progress(enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    from data_store.progress import progress_bar

    return progress_bar(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), disable=not enabled
    )
