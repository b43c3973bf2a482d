"""The success reward model: a small CNN that says, frame by frame, whether the task is done (WMPO §3.3, WoVR B).

    rm = FrameRewardModel.load("runs/rm")
    p = rm.score(frames)              # uint8 [B, T, H, W, 3] -> float32 [B, T] p(success)
    at = rm.first_success(frames)     # int64 [B]: first step with p >= threshold, -1 where none
    keep = valid_steps(at, T)         # bool [B, T]: steps up to and including the first success (WMPO mask)

Labels, from the real rollouts (successes and failures alike):
- positives: frames at/after the episode's ``success_step`` where the recorder knows it; otherwise, as WMPO
  labels its last clip, the last ``success_tail`` frames of a successful episode (our recorders stop at the
  success, so those are the frames where the task completes);
- negatives: every frame of a failed episode, and the frames of a successful one that come more than ``gap``
  steps before its positives (the frames in the gap look like success already and are left out);
- batches are class-balanced (WMPO).

Departures from the papers:
- single frames, like WoVR's ResNet classifier (WMPO uses 8-frame VideoMAE clips); a 4-layer CNN at 64×64 instead
  of a ResNet/VideoMAE at 224.
- robustness to imagined frames: training frames are blurred, noised and brightness-jittered, because the world
  model's frames are smoother than real ones; ``imagined`` episodes (the world model's open-loop replays of the
  training episodes, labelled like their real counterparts) can be mixed in.
- the threshold is calibrated on held-out episodes to maximise episode-level agreement with the real outcome
  (ties: frame-level F1), where WMPO picks it per task on validation clips and WoVR fixes 0.5/0.9.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from trainer.protocols import WorldModel
from trainer.world_model.checkpoint import read_model_dir, write_model_dir
from trainer.world_model.data import RecordedEpisode, load_episodes, split_held_out
from trainer.world_model.model import frames_to_tensor
from trainer.world_model.replay import replay

KIND = "reward-model"


@dataclass(frozen=True)
class RewardConfig:
    image_size: tuple[int, int] = (64, 64)
    channels: tuple[int, ...] = (16, 32, 64, 64)  # stride-2 conv layers
    success_tail: int = 2  # positives when success_step is unknown: the last frames of a successful episode
    gap: int = 6  # frames just before the positives that are neither positive nor negative
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4  # WMPO: 1e-4
    blur_prob: float = 0.5
    noise_std: float = 0.06  # max std of Gaussian pixel noise, in [-1, 1] units
    brightness: float = 0.08
    seed: int = 0
    threshold: float = 0.5  # replaced by calibration

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RewardConfig:
        kw = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("image_size", "channels"):
            if k in kw:
                kw[k] = tuple(kw[k])
        return cls(**kw)


PRESETS: dict[str, RewardConfig] = {
    "tiny": RewardConfig(channels=(8, 16, 16, 16), steps=200, batch_size=32),
    "small": RewardConfig(),
}


class SuccessClassifier(nn.Module):
    """float [N, 3, H, W] in [-1, 1] -> success logit [N]."""

    def __init__(self, cfg: RewardConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in cfg.channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(min(8, c), c), nn.SiLU()]
            c_in = c
        self.features = nn.Sequential(*layers)
        h, w = cfg.image_size
        s = 2 ** len(cfg.channels)
        # flatten, not pool: the camera is fixed, so *where* the drawer or the button is carries the verdict
        self.head = nn.Linear(c_in * (h // s) * (w // s), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1)).squeeze(-1)


def valid_steps(first_success: np.ndarray, length: int) -> np.ndarray:
    """bool [B, T]: the steps that count for RL, up to and including the first success (WMPO §3.3 masking);
    every step where there is no success (-1)."""
    at = np.asarray(first_success, dtype=np.int64)
    t = np.arange(length)[None]
    return (at[:, None] < 0) | (t <= at[:, None])


class FrameRewardModel:
    """Implements ``trainer.protocols.RewardModel``."""

    def __init__(self, net: SuccessClassifier, config: RewardConfig, threshold: float | None = None) -> None:
        self.net = net.eval()
        self.config = config
        self.threshold = float(config.threshold if threshold is None else threshold)

    @torch.inference_mode()
    def score(self, frames: np.ndarray, batch: int = 512) -> np.ndarray:
        """uint8 [B, T, H, W, 3] -> p(success) float32 [B, T]."""
        frames = np.asarray(frames)
        if frames.ndim != 5 or frames.dtype != np.uint8:
            raise ValueError(f"frames: expected uint8 [B, T, H, W, 3], got {frames.dtype} {frames.shape}")
        b, t = frames.shape[:2]
        flat = frames.reshape(b * t, *frames.shape[2:])
        out = [torch.sigmoid(self.net(frames_to_tensor(flat[i : i + batch]))) for i in range(0, len(flat), batch)]
        return (torch.cat(out) if out else torch.zeros(0)).numpy().astype(np.float32).reshape(b, t)

    def first_success(self, frames: np.ndarray) -> np.ndarray:
        """int64 [B]: the first step whose score reaches the threshold; -1 where none does."""
        return first_over(self.score(frames), self.threshold)

    def save(self, out: str | Path, manifest: dict[str, Any] | None = None) -> Path:
        cfg = replace(self.config, threshold=self.threshold)
        return write_model_dir(out, self.net, cfg.to_json(), kind=KIND, manifest=manifest)

    @classmethod
    def load(cls, path: str | Path) -> FrameRewardModel:
        weights, config, _ = read_model_dir(path, KIND)
        cfg = RewardConfig.from_json(config)
        net = SuccessClassifier(cfg)
        net.load_state_dict(weights)
        return cls(net, cfg)


def first_over(scores: np.ndarray, threshold: float) -> np.ndarray:
    """float [B, T] -> int64 [B]: first index with score >= threshold, -1 where none."""
    hit = np.asarray(scores) >= threshold
    return np.where(hit.any(axis=1), hit.argmax(axis=1), -1).astype(np.int64)


# ------------------------------------------------------------------------------------------ labels & data


def frame_labels(ep: RecordedEpisode, cfg: RewardConfig) -> np.ndarray:
    """int8 [T]: 1 success, 0 not yet / failed, -1 left out (unknown outcome, or the gap before success)."""
    n = len(ep)
    if ep.success is None:
        return np.full(n, -1, np.int8)
    if not ep.success:
        return np.zeros(n, np.int8)
    first = ep.success_step if ep.success_step is not None else max(0, n - cfg.success_tail)
    labels = np.zeros(n, np.int8)
    labels[max(0, first - cfg.gap) : first] = -1
    labels[first:] = 1
    return labels


def augment(x: torch.Tensor, cfg: RewardConfig, gen: torch.Generator) -> torch.Tensor:
    """Blur, noise and brightness jitter, so that the world model's smoother frames look familiar."""
    n = x.shape[0]
    if cfg.blur_prob > 0:
        sigma = 0.5 + torch.rand(1, generator=gen).item()
        k = torch.exp(-((torch.arange(5) - 2.0) ** 2) / (2 * sigma**2))
        k = (k / k.sum()).view(1, 1, 1, 5)
        blurred = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), k.expand(3, 1, 1, 5), groups=3)
        blurred = F.conv2d(
            F.pad(blurred, (0, 0, 2, 2), mode="replicate"), k.transpose(2, 3).expand(3, 1, 5, 1), groups=3
        )
        pick = (torch.rand(n, generator=gen) < cfg.blur_prob).view(n, 1, 1, 1)
        x = torch.where(pick, blurred, x)
    x = x + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * cfg.brightness
    x = x + torch.randn(x.shape, generator=gen) * torch.rand(n, 1, 1, 1, generator=gen) * cfg.noise_std
    return x.clamp(-1, 1)


# ------------------------------------------------------------------------------------------------ metrics


def prf(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1, accuracy of boolean predictions."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    tp = float((pred & truth).sum())
    precision = tp / max(1.0, float(pred.sum()))
    recall = tp / max(1.0, float(truth.sum()))
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": float((pred == truth).mean()) if len(pred) else float("nan"),
        "n": len(pred),
        "positives": int(truth.sum()),
    }


def evaluate(
    rm: FrameRewardModel, episodes: Sequence[RecordedEpisode], threshold: float | None = None
) -> dict[str, Any]:
    """Frame-level (labelled frames) and episode-level (any frame over threshold vs real outcome) metrics."""
    thr = rm.threshold if threshold is None else threshold
    scores = [rm.score(ep.frames[None])[0] for ep in episodes]
    return _metrics(scores, episodes, rm.config, thr)


def _metrics(
    scores: list[np.ndarray], episodes: Sequence[RecordedEpisode], cfg: RewardConfig, thr: float
) -> dict[str, Any]:
    known = [(s, ep) for s, ep in zip(scores, episodes, strict=True) if ep.success is not None]
    labels = [frame_labels(ep, cfg) for _, ep in known]
    fp = (
        np.concatenate([s[lab >= 0] >= thr for (s, _), lab in zip(known, labels, strict=True)])
        if known
        else np.zeros(0)
    )
    ft = np.concatenate([lab[lab >= 0] == 1 for lab in labels]) if known else np.zeros(0)
    ep_pred = np.array([bool((s >= thr).any()) for s, _ in known])
    ep_true = np.array([bool(ep.success) for _, ep in known])
    return {"threshold": thr, "frame": prf(fp, ft), "episode": prf(ep_pred, ep_true)}


def calibrate_threshold(rm: FrameRewardModel, episodes: Sequence[RecordedEpisode]) -> float:
    """The threshold that maximises episode-level agreement on ``episodes`` (ties: frame F1, then the middle of
    the best plateau, so the margin to both sides is largest)."""
    scores = [rm.score(ep.frames[None])[0] for ep in episodes]
    # linear in the middle, then ever closer to 1: a confident classifier's best threshold can be 0.999
    grid = np.concatenate([np.linspace(0.05, 0.95, 91), 1 - np.logspace(-1.3, -4, 28)])
    keys = []
    for thr in grid:
        m = _metrics(scores, episodes, rm.config, float(thr))
        keys.append((round(m["episode"]["accuracy"], 6), round(m["frame"]["f1"], 6)))
    best = max(keys)
    plateau = [float(t) for t, k in zip(grid, keys, strict=True) if k == best]
    return plateau[len(plateau) // 2]


# ----------------------------------------------------------------------------------------------- training


@dataclass
class RewardTrainResult:
    model: FrameRewardModel
    losses: list[tuple[int, float]] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)  # metrics on the calibration episodes
    seconds: float = 0.0


def fit_reward_model(
    episodes: Sequence[RecordedEpisode],
    out: str | Path | None,
    *,
    config: RewardConfig = RewardConfig(),
    calibration: Sequence[RecordedEpisode] | None = None,
    imagined: Sequence[RecordedEpisode] = (),
    init: FrameRewardModel | str | Path | None = None,
    on_log: Callable[[int, float], None] | None = None,
    log_every: int = 50,
) -> RewardTrainResult:
    """Train on ``episodes`` (+ ``imagined`` replays), calibrate the threshold on ``calibration`` (default: 20 % of
    ``episodes`` held out of training), save to ``out``."""
    if calibration is None:
        episodes, calibration = split_held_out(episodes, 0.2, seed=config.seed)
    train_eps = [*episodes, *imagined]
    frames = np.concatenate([e.frames for e in train_eps])
    labels = np.concatenate([frame_labels(e, config) for e in train_eps])
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(f"reward model needs successes and failures: {len(pos)} positive, {len(neg)} negative frames")
    torch.manual_seed(config.seed)
    net = SuccessClassifier(config)
    if init is not None:
        src = init if isinstance(init, FrameRewardModel) else FrameRewardModel.load(init)
        net.load_state_dict(src.net.state_dict())
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    result = RewardTrainResult(model=FrameRewardModel(net, config))
    t0, running, n_run = time.time(), 0.0, 0
    net.train()
    half = config.batch_size // 2
    for step in range(config.steps):
        rng = np.random.default_rng([config.seed, step])
        gen = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        idx = np.concatenate([rng.choice(pos, half), rng.choice(neg, config.batch_size - half)])  # class-balanced
        y = torch.cat([torch.ones(half), torch.zeros(config.batch_size - half)])
        x = augment(frames_to_tensor(frames[idx]), config, gen)
        loss = F.binary_cross_entropy_with_logits(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running, n_run = running + float(loss.detach()), n_run + 1
        if (step + 1) % log_every == 0 or step + 1 == config.steps:
            result.losses.append((step + 1, running / n_run))
            if on_log:
                on_log(step + 1, running / n_run)
            running, n_run = 0.0, 0
    net.eval()
    rm = FrameRewardModel(net, config)
    if calibration and any(e.success for e in calibration) and any(e.success is False for e in calibration):
        rm.threshold = calibrate_threshold(rm, calibration)
        result.calibration = evaluate(rm, calibration)
    result.model, result.seconds = rm, time.time() - t0
    if out is not None:
        rm.save(
            out,
            manifest={
                "dataset": {
                    "episodes": len(episodes),
                    "imagined": len(imagined),
                    "calibration": len(calibration),
                    "ids": sorted(e.episode_id for e in episodes),
                },
                "calibration": result.calibration,
                "losses": result.losses[-20:],
            },
        )
    return result


def imagined_counterparts(
    world_model: WorldModel, episodes: Sequence[RecordedEpisode], seed: int = 0
) -> list[RecordedEpisode]:
    """Each episode as the world model imagines it: its real first frame, then the open-loop replay of its recorded
    actions; same length, same outcome, so ``frame_labels`` labels it like the real one."""
    return [
        replace(e, frames=np.concatenate([e.frames[:1], f]), episode_id=e.episode_id + ":imagined")
        for e, f in zip(episodes, replay(world_model, episodes, seed=seed), strict=True)
    ]


def fit_with_imagination(
    episodes: Sequence[RecordedEpisode],
    out: str | Path | None,
    *,
    config: RewardConfig = RewardConfig(),
    world_model: Any = None,
    init: FrameRewardModel | str | Path | None = None,
    on_log: Callable[[int, float], None] | None = None,
) -> RewardTrainResult:
    """``fit_reward_model`` with 20 % of ``episodes`` kept for calibration and, given a world model, the imagined
    counterparts of all of them: those of the training part are trained on, those of the calibration part join
    the calibration (so the threshold fits real and imagined frames). Without imagined frames a drawer-close
    reward model missed every imagined success (docs/world_model.md)."""
    fit_eps, calib_eps = split_held_out(episodes, 0.2, seed=config.seed)
    fake = {e.episode_id: e for e in imagined_counterparts(world_model, episodes, config.seed)} if world_model else {}
    return fit_reward_model(
        fit_eps,
        out,
        config=config,
        calibration=[*calib_eps, *(fake[e.episode_id + ":imagined"] for e in calib_eps if fake)],
        imagined=[fake[e.episode_id + ":imagined"] for e in fit_eps if fake],
        init=init,
        on_log=on_log,
    )


def train_reward_model(
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
    init: FrameRewardModel | str | Path | None = None,
    world_model: Any = None,
) -> FrameRewardModel:
    """Train from the store's complete, labelled episodes that match the filters; -> the calibrated model.
    ``world_model`` (a ``PixelWorldModel`` or its directory): also train on its replays of these episodes."""
    episodes = [
        e
        for e in load_episodes(
            store, camera=camera, task=task, policy_version=policy_version, robot_id=robot_id, episode_ids=episode_ids
        )
        if e.success is not None
    ]
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    cfg = PRESETS[preset] if steps is None else replace(PRESETS[preset], steps=steps)
    if isinstance(world_model, (str, Path)):
        from trainer.world_model import load_world_model

        world_model = load_world_model(world_model)
    return fit_with_imagination(episodes, out, config=cfg, world_model=world_model, init=init).model
