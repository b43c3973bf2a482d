"""Recorded episodes in memory, and the training windows cut from them.

Shapes: an episode holds frames uint8 [T, H, W, 3] and actions float32 [T, A]; step t holds the frame seen at
tick t and the action sent after it (data_store convention), so frame t+1 follows action t.

A training window at tick s (WoVR context layout):
    context frames  = [frame 0 (reference), frames s-M+1 .. s (memory, clamped at 0)]  -> [C, H, W, 3]
    actions         = actions s .. s+K-1                                               -> [K, A]
    target frames   = frames s+1 .. s+K                                                -> [K, H, W, 3]
Windows that run past the end repeat the last frame with zero actions ("the arm holds still"), so the final
frames of an episode, where success shows, are trained on as often as any other.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class RecordedEpisode:
    episode_id: str
    task: str
    policy_version: str
    frames: np.ndarray  # uint8 [T, H, W, 3]
    actions: np.ndarray  # float32 [T, A]
    success: bool | None
    success_step: int | None = None  # first step whose frame shows success, where the recorder knows it

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def load_episodes(
    store: Any,  # data_store.episodes.EpisodeStore or its root folder
    *,
    camera: str | None = None,
    task: str | None = None,
    policy_version: str | None = None,
    robot_id: str | None = None,
    success: bool | None = None,
    episode_ids: Sequence[str] | None = None,
    min_length: int = 2,
    limit: int | None = None,
) -> list[RecordedEpisode]:
    """Complete episodes from the Zarr store (``data_store.episodes``), frames of ``camera`` (default: the first).

    Episodes whose success is unknown are kept (the world model trains on them; the reward model skips them)."""
    from data_store.episodes import EpisodeStore

    if isinstance(store, (str, Path)):
        if not Path(store).exists():
            raise FileNotFoundError(f"no episode store at {store}")
        store = EpisodeStore(store, create=False)
    infos = store.episodes(
        task=task, success=success, policy_version=policy_version, robot_id=robot_id, status="complete"
    )
    wanted = set(episode_ids) if episode_ids is not None else None
    out: list[RecordedEpisode] = []
    for info in infos:
        if limit is not None and len(out) >= limit:
            break
        if (wanted is not None and info.episode_id not in wanted) or info.length < min_length:
            continue
        reader = store.open(info.episode_id)
        cam = camera or next(iter(reader.spec.cameras))
        if cam not in reader.spec.cameras:
            raise ValueError(f"episode {info.episode_id} has no camera {cam!r} (has {list(reader.spec.cameras)})")
        label = {"true": True, "false": False}.get(info.success)
        step = (info.meta or {}).get("success_step")
        out.append(
            RecordedEpisode(
                episode_id=info.episode_id,
                task=info.task,
                policy_version=info.policy_version,
                frames=np.asarray(reader.images(cam), dtype=np.uint8),
                actions=np.asarray(reader.actions(), dtype=np.float32),
                success=label,
                success_step=int(step) if step is not None and label else None,
            )
        )
    return out


def split_held_out(
    episodes: Sequence[RecordedEpisode], fraction: float, seed: int = 0
) -> tuple[list[RecordedEpisode], list[RecordedEpisode]]:
    """Hold out ``fraction`` of each (task, outcome) group, at least one per group that has two or more.

    Each group is shuffled by its own seed (from ``seed`` and the group's name), so filtering by task picks the
    same held-out episodes as the unfiltered split: a world model and a reward model trained with different
    filters never see each other's test episodes."""
    groups: dict[tuple[str, bool | None], list[RecordedEpisode]] = {}
    for ep in episodes:
        groups.setdefault((ep.task, ep.success), []).append(ep)
    train: list[RecordedEpisode] = []
    held: list[RecordedEpisode] = []
    for key in sorted(groups, key=str):
        group = sorted(groups[key], key=lambda e: e.episode_id)
        order = np.random.default_rng([seed, zlib.crc32(str(key).encode())]).permutation(len(group))
        n_held = round(fraction * len(group)) if len(group) >= 2 else 0
        n_held = max(n_held, 1) if len(group) >= 2 and fraction > 0 else n_held
        held += [group[i] for i in order[:n_held]]
        train += [group[i] for i in order[n_held:]]
    return train, held


class ChunkWindows:
    """Random (context, actions, target) windows over a set of episodes, all frames held in one uint8 array."""

    def __init__(self, episodes: Sequence[RecordedEpisode], chunk_size: int, memory_frames: int) -> None:
        if not episodes:
            raise ValueError("no episodes to train on")
        self.k, self.m = chunk_size, memory_frames
        self.frames = np.concatenate([e.frames for e in episodes])
        self.actions = np.concatenate([e.actions for e in episodes]).astype(np.float32)
        lengths = np.array([len(e) for e in episodes])
        self.starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.lengths = lengths
        # every (episode, tick) with at least one real next frame is a window start
        self.index = np.concatenate([np.stack([np.full(n - 1, i), np.arange(n - 1)], 1) for i, n in enumerate(lengths)])

    def __len__(self) -> int:
        return len(self.index)

    def batch(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> context uint8 [B, C, H, W, 3], actions float32 [B, K, A], target uint8 [B, K, H, W, 3]."""
        pick = self.index[rng.integers(0, len(self.index), size)]
        ep, s = pick[:, 0], pick[:, 1]
        start, last = self.starts[ep], self.starts[ep] + self.lengths[ep] - 1
        mem = s[:, None] + np.arange(-self.m + 1, 1)[None]  # [B, M]
        ctx = np.concatenate([start[:, None], start[:, None] + np.maximum(mem, 0)], axis=1)
        fut = s[:, None] + np.arange(1, self.k + 1)[None]  # [B, K]
        tgt = np.minimum(start[:, None] + fut, last[:, None])
        act_idx = start[:, None] + fut - 1
        actions = self.actions[np.minimum(act_idx, last[:, None])]
        actions[act_idx >= last[:, None]] = 0.0  # past the end: the arm holds still
        return self.frames[ctx], actions, self.frames[tgt]
