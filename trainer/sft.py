"""Supervised fine-tuning of the base policy on the store's successful episodes (WMPO, arXiv 2511.09515).

Reads top to bottom: ``load_demonstrations`` (the store's policy view -> arrays in memory), ``sft_step``
(one cross-entropy step over action tokens), ``train_sft`` (the loop: schedule, checkpoints, resume,
final artifact, evaluation on the simulated arm).

Each sample is the frame and proprio state at step t and the chunk of the next K=8 actions, as 8×A
tokens (256 bins from the training actions' q01/q99); the loss is the mean token cross-entropy over
steps inside the episode (``actions_mask``).

Resume is exact: the batch at step s is drawn from ``default_rng([seed, s])`` and the learning rate
is a pure function of s, so a run killed and resumed from its last checkpoint takes the same steps as
one that was never interrupted. Checkpoints are an artifact (``vla.artifact``) plus the optimizer's
tensors in safetensors and its scalars in JSON: no pickle.

Departures from OpenVLA-OFT's SFT in WMPO (300 demos/task, 8×H100; arXiv 2511.09515): a few demos per task
and a few thousand steps on a CPU; random-shift image augmentation (±4 px, as DrQ) because a vision encoder
trained from scratch overfits a handful of demonstrations without it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from data_store.episodes import EpisodeStore
from data_store.schema import RobotSpec
from data_store.views import EpisodeView
from vla.artifact import load_artifact, save_artifact
from vla.model import VLAConfig, VLAPolicy
from vla.norm_stats import NormStats


@dataclass(frozen=True)
class SFTConfig:
    preset: str = "small"
    steps: int = 1500
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_steps: int = 50
    grad_clip: float = 1.0
    shift_pixels: int = 4  # random-shift augmentation
    checkpoint_every: int = 100
    seed: int = 0
    tasks: tuple[str, ...] | None = None  # None: every task in the store
    model_overrides: dict[str, Any] = field(default_factory=dict)  # VLAConfig fields, e.g. {"language": "hash"}

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tasks"] = list(self.tasks) if self.tasks is not None else None
        return d


@dataclass
class Demonstrations:
    """Training samples in memory. N samples; images uint8 [N,H,W,3], states float32 [N,S],
    chunks float32 [N,K,A], chunk_mask bool [N,K], instruction index int [N] into ``instructions``."""

    images: np.ndarray
    states: np.ndarray
    chunks: np.ndarray
    chunk_mask: np.ndarray
    instruction_index: np.ndarray
    instructions: list[str]
    tasks: list[str]
    episode_ids: list[str]
    spec: RobotSpec

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def snapshot(self) -> str:
        """Dataset snapshot id: a hash of the episode ids that fed the run."""
        return "episodes-" + hashlib.sha256("\n".join(sorted(self.episode_ids)).encode()).hexdigest()[:16]


@dataclass
class SFTResult:
    policy: VLAPolicy
    version: str
    step: int
    losses: list[float]  # loss at every step of the run, resumed steps included
    samples_per_s: float
    train_seconds: float
    evaluations: list[Any] = field(default_factory=list)  # trainer.evaluate.EvalResult per task


def load_demonstrations(
    store: EpisodeStore, tasks: tuple[str, ...] | None, chunk: int, episode_ids: tuple[str, ...] | None = None
) -> Demonstrations:
    """The successful, complete episodes of ``store`` (optionally only of ``tasks`` / ``episode_ids``) in memory."""
    view = EpisodeView(store, "policy", success_only=True, tasks=tasks, chunk=chunk, episode_ids=episode_ids)
    if len(view) == 0:
        which = f" of tasks {', '.join(tasks)}" if tasks else ""
        raise ValueError(f"no successful episodes{which} in the store {store.root}")
    specs = {json.dumps(info.spec.to_json(), sort_keys=True): info.spec for info in view.episodes.values()}
    if len(specs) != 1:
        raise ValueError(f"the episodes have {len(specs)} different robot specs; train on one robot kind at a time")
    samples = [view[i] for i in range(len(view))]
    instructions = sorted({s["instruction"] for s in samples})
    lookup = {s: i for i, s in enumerate(instructions)}
    return Demonstrations(
        images=np.stack([s["frames"][-1] for s in samples]),
        states=np.stack([s["state"] for s in samples]).astype(np.float32),
        chunks=np.stack([s["actions"] for s in samples]).astype(np.float32),
        chunk_mask=np.stack([s["actions_mask"] for s in samples]),
        instruction_index=np.asarray([lookup[s["instruction"]] for s in samples]),
        instructions=instructions,
        tasks=sorted({s["task"] for s in samples}),
        episode_ids=sorted(view.episodes),
        spec=next(iter(specs.values())),
    )


def learning_rate(step: int, cfg: SFTConfig) -> float:
    """Linear warm-up, then cosine decay to 10% (a pure function of the step: resume needs no state)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def draw_batch(data: Demonstrations, step: int, cfg: SFTConfig) -> tuple[np.ndarray, ...]:
    """The batch of step ``step``: indices from ``default_rng([seed, step])``, images randomly shifted."""
    rng = np.random.default_rng([cfg.seed, step])
    idx = rng.integers(0, len(data), size=cfg.batch_size)
    images = data.images[idx]
    if cfg.shift_pixels > 0:
        p = cfg.shift_pixels
        padded = np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)), mode="edge")
        h, w = images.shape[1:3]
        dy, dx = rng.integers(0, 2 * p + 1, size=(2, len(idx)))
        images = np.stack([padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(len(idx))])
    return images, data.states[idx], data.chunks[idx], data.chunk_mask[idx], data.instruction_index[idx]


def sft_loss(policy: VLAPolicy, batch: tuple[np.ndarray, ...], instructions: list[str]) -> tuple[torch.Tensor, float]:
    """Mean token cross-entropy over the chunk steps inside the episode; also the token accuracy."""
    images, states, chunks, mask, instr = batch
    device = next(policy.parameters()).device  # the CPU, or the GPU the policy was moved to
    pixels, states_t = torch.from_numpy(images).to(device), torch.from_numpy(states).to(device)
    logits = policy(pixels, states_t, [instructions[i] for i in instr])
    targets = policy.encode_actions(chunks).to(device)  # [B,K,A]
    ce = F.cross_entropy(logits.flatten(0, 2), targets.flatten(), reduction="none").view(targets.shape)
    weights = torch.from_numpy(mask).to(device).float().unsqueeze(-1).expand_as(ce)
    loss = (ce * weights).sum() / weights.sum()
    accuracy = float(((logits.argmax(-1) == targets).float() * weights).sum() / weights.sum())
    return loss, accuracy


def sft_step(
    policy: VLAPolicy, optimizer: torch.optim.Optimizer, data: Demonstrations, step: int, cfg: SFTConfig
) -> tuple[float, float]:
    """One optimizer step on ``step``'s batch at ``step``'s learning rate; returns (loss, token accuracy)."""
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(step, cfg)
    loss, accuracy = sft_loss(policy, draw_batch(data, step, cfg), data.instructions)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
    optimizer.step()
    return loss.item(), accuracy


def _progress_bar(enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    from data_store.progress import progress_bar

    columns = (
        TextColumn("SFT"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeRemainingColumn(),
    )
    return progress_bar(*columns, disable=not enabled)


def _artifact_metrics(
    cfg: SFTConfig, losses: list[float], data: Demonstrations, evaluations: list[Any]
) -> dict[str, Any]:
    """The metrics the policy artifact carries: the run, its data and each task's success rate."""
    metrics: dict[str, Any] = {
        "sft_steps": cfg.steps,
        "sft_final_loss": float(np.mean(losses[-20:])) if losses else None,
        "train_episodes": len(data.episode_ids),
        "train_samples": len(data),
    }
    for e in evaluations:
        metrics[f"success_rate/{e.task}"] = e.rate
    return metrics


def train_sft(
    store: EpisodeStore | str | Path,
    out: str | Path,
    cfg: SFTConfig = SFTConfig(),
    *,
    resume: bool = True,
    progress: bool = False,
    eval_episodes: int = 0,
    eval_seed: int = 100_000,
    parent_version: str | None = None,
    training_run: str | None = None,
    episode_ids: tuple[str, ...] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> SFTResult:
    """Train on the store's successful episodes; write the policy artifact to ``out``.

    Checkpoints go to ``<out>.ckpt/`` every ``cfg.checkpoint_every`` steps; with ``resume`` a run picks
    up from there (it must have the same config and data). ``on_step(step, loss)`` runs after each step
    (the tests use it to stop a run midway). ``episode_ids`` limits training to those episodes.
    ``eval_episodes`` > 0 evaluates every trained task on the simulated arm at the end (seeds from
    ``eval_seed``, disjoint from the demonstrations').
    """
    store = store if isinstance(store, EpisodeStore) else EpisodeStore(store, create=False)
    out = Path(out)
    ckpt = out.with_name(out.name + ".ckpt")
    data = load_demonstrations(store, cfg.tasks, VLAConfig.preset(cfg.preset).chunk_size, episode_ids)
    run_id = (
        training_run
        or f"sft-{data.snapshot}-{hashlib.sha256(json.dumps(cfg.to_json(), sort_keys=True).encode()).hexdigest()[:8]}"
    )

    torch.manual_seed(cfg.seed)
    policy = VLAPolicy(
        VLAConfig.preset(
            cfg.preset, action_dim=data.spec.action_dim, state_dim=data.spec.state_dim, **cfg.model_overrides
        ),
        NormStats.fit(data.states, data.chunks[:, 0], data.spec),  # chunk t starts with step t's own action
        data.spec,
    )
    optimizer: torch.optim.Optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, losses = 0, list[float]()
    if resume and (ckpt / "train_state.json").is_file():
        policy, optimizer, start, losses = _load_checkpoint(ckpt, cfg, data.snapshot)

    policy.train()
    t0, seen = time.perf_counter(), 0
    with _progress_bar(progress) as bar:
        job = bar.add_task("SFT", total=cfg.steps, completed=start, loss="loss …")
        for step in range(start, cfg.steps):
            loss, accuracy = sft_step(policy, optimizer, data, step, cfg)
            losses.append(loss)
            seen += cfg.batch_size
            bar.update(job, advance=1, loss=f"loss {losses[-1]:.3f} acc {accuracy:.2f}")
            done = step + 1
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                _save_checkpoint(ckpt, policy, optimizer, done, losses, cfg, data.snapshot, run_id)
            if on_step is not None:
                on_step(done, losses[-1])
    train_seconds = time.perf_counter() - t0

    policy.eval()
    evaluations = []
    if eval_episodes > 0:
        from trainer.evaluate import evaluate_policy

        for task in data.tasks:
            evaluations.append(evaluate_policy(policy, task, eval_episodes, seed=eval_seed, progress=progress))
    version = save_artifact(
        policy,
        out,
        parent_version=parent_version,
        training_run=run_id,
        dataset_snapshot=data.snapshot,
        metrics=_artifact_metrics(cfg, losses, data, evaluations),
        overwrite=True,
    )
    samples_per_s = seen / train_seconds if seen else 0.0
    return SFTResult(policy, version, cfg.steps, losses, samples_per_s, train_seconds, evaluations)


# ---- checkpoints: an artifact + optimizer tensors (safetensors) + scalars (JSON) -------------------


def _save_checkpoint(
    ckpt: Path,
    policy: VLAPolicy,
    optimizer: torch.optim.Optimizer,
    step: int,
    losses: list[float],
    cfg: SFTConfig,
    snapshot: str,
    run_id: str,
) -> None:
    from safetensors.torch import save_file

    tmp = ckpt.with_name(ckpt.name + f".partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_artifact(policy, tmp / "policy", training_run=run_id, dataset_snapshot=snapshot, metrics={"step": step})
    tensors, scalars = _optimizer_to_flat(optimizer)
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    state = {
        "step": step,
        "losses": losses,
        "config": cfg.to_json(),
        "dataset_snapshot": snapshot,
        "optimizer": scalars,
    }
    (tmp / "train_state.json").write_text(json.dumps(state))
    old = ckpt.with_name(ckpt.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if ckpt.exists():
        ckpt.rename(old)
    tmp.rename(ckpt)  # the last complete checkpoint is always at ckpt (or, for an instant, at .old)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(
    ckpt: Path, cfg: SFTConfig, snapshot: str
) -> tuple[VLAPolicy, torch.optim.Optimizer, int, list[float]]:
    from safetensors.torch import load_file

    state = json.loads((ckpt / "train_state.json").read_text())
    if state["config"] != cfg.to_json():
        changed = sorted(k for k in state["config"] if state["config"][k] != cfg.to_json().get(k))
        raise ValueError(f"checkpoint {ckpt} was made with other settings ({', '.join(changed)}); use --no-resume")
    if state["dataset_snapshot"] != snapshot:
        raise ValueError(
            f"checkpoint {ckpt} was trained on other episodes ({state['dataset_snapshot']}); use --no-resume"
        )
    policy = load_artifact(ckpt / "policy")
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    optimizer.load_state_dict(_optimizer_from_flat(load_file(str(ckpt / "optimizer.safetensors")), state["optimizer"]))
    return policy, optimizer, int(state["step"]), [float(x) for x in state["losses"]]


def _optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """AdamW state -> tensors ``state.<param>.<key>`` and JSON scalars (param groups, non-tensor state)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {"param_groups": sd["param_groups"], "state": {}}
    for pid, pstate in sd["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars["state"].setdefault(str(pid), {})[key] = value
    return tensors, scalars


def _optimizer_from_flat(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for pid, extra in scalars["state"].items():
        state.setdefault(int(pid), {}).update(extra)
    return {"state": state, "param_groups": scalars["param_groups"]}
