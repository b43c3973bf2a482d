"""Training views over the episode store: map-style datasets of samples for the policy and the world model.

A sample at step ``t`` of an episode (shapes per sample; a DataLoader's default collate adds the batch axis):

- ``frames``: uint8 ``[C, H, W, 3]``: the context. With ``anchor_first`` the episode's first frame comes
  first (WoVR's first-frame anchoring, arXiv 2602.13977), then the last ``context`` frames up to and including
  ``t`` (steps before 0 repeat frame 0; ``frames_mask`` bool ``[C]`` is False for those repeats);
- ``future_frames``: uint8 ``[K, H, W, 3]`` frames ``t+1 .. t+K`` (only with ``future=True``, for the
  world model, which predicts them from the context and the action chunk), ``future_mask`` bool ``[K]``;
- ``state``: float32 ``[S]`` at ``t``; ``instruction``: str; ``task``: str;
- ``actions``: float32 ``[K, A]``: the chunk ``t .. t+K-1`` (K = 8 as in WMPO, arXiv 2511.09515); past the episode's
  end the last action repeats and ``actions_mask`` bool ``[K]`` is False;
- ``episode_id``: str, ``step``: int, ``success``: float32 (1, 0, or NaN when unknown).

It is a plain class with ``__len__``/``__getitem__`` returning numpy arrays, so ``torch.utils.data.
DataLoader`` takes it as a map-style dataset while ``data_store`` never imports torch. Episodes are small
(64x64 frames), so each view reads an episode's arrays once and keeps them in memory.

Keyframe hook (WoVR's Keyframe-Initialized Rollouts): pass ``keyframes``, a list of ``(episode_id, step)``
or ``(episode_id, step, weight)``; the view then samples exactly those steps, and ``weights`` gives their
weights for a ``WeightedRandomSampler``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from data_store.episodes import EpisodeReader, EpisodeStore
from data_store.schema import DEFAULT_CHUNK

Keyframe = tuple[str, int] | tuple[str, int, float]


@dataclass(frozen=True)
class ViewConfig:
    """What a sample holds and which episodes feed the view."""

    context: int = 1  # last c frames up to and including t
    anchor_first: bool = False  # prepend the episode's first frame
    chunk: int = DEFAULT_CHUNK  # K actions per sample
    future: bool = False  # also return frames t+1..t+K (world-model targets)
    camera: str | None = None  # None: the spec's first camera
    success_only: bool = False
    tasks: tuple[str, ...] | None = None
    episode_ids: tuple[str, ...] | None = None
    statuses: tuple[str, ...] = ("complete",)  # add "aborted" to learn from interrupted episodes too

    def __post_init__(self) -> None:
        if self.context < 1 or self.chunk < 1:
            raise ValueError(f"ViewConfig: context and chunk must be >= 1, got {self.context} and {self.chunk}")


PRESETS: dict[str, ViewConfig] = {
    # behaviour cloning: the current frame and the next chunk of 8 actions
    "policy": ViewConfig(context=1, chunk=DEFAULT_CHUNK),
}


class EpisodeView:
    """Samples ``(episode, step)`` from a store; see the module docstring for a sample's keys and shapes."""

    def __init__(
        self,
        store: EpisodeStore,
        config: ViewConfig | str = "policy",
        *,
        keyframes: Sequence[Keyframe] | None = None,
        **overrides: Any,
    ) -> None:
        cfg = PRESETS[config] if isinstance(config, str) else config
        self.config = replace(cfg, **overrides) if overrides else cfg
        self.store = store
        infos = store.episodes(
            task=list(self.config.tasks) if self.config.tasks is not None else None,
            success=True if self.config.success_only else None,
            status=list(self.config.statuses),
        )
        if self.config.episode_ids is not None:
            wanted = set(self.config.episode_ids)
            infos = [i for i in infos if i.episode_id in wanted]
        self.episodes = {i.episode_id: i for i in infos if i.length > 0}
        self._cache: dict[str, dict[str, Any]] = {}
        if keyframes is None:
            self.index = [(e, t) for e, info in self.episodes.items() for t in range(info.length)]
            self.weights = np.ones(len(self.index))
        else:
            self.index, weights = [], []
            for k in keyframes:
                episode_id, t = str(k[0]), int(k[1])
                if episode_id not in self.episodes:
                    continue  # filtered out (or not in the store): the filters win over the keyframe list
                if not 0 <= t < self.episodes[episode_id].length:
                    raise IndexError(f"keyframe ({episode_id}, {t}): step out of range")
                self.index.append((episode_id, t))
                weights.append(float(k[2]) if len(k) > 2 else 1.0)  # type: ignore[misc]
            self.weights = np.asarray(weights, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.index)

    def _episode(self, episode_id: str) -> dict[str, Any]:
        cached = self._cache.get(episode_id)
        if cached is None:
            reader: EpisodeReader = self.store.open(episode_id)
            camera = self.config.camera or next(iter(reader.spec.cameras))
            info = self.episodes[episode_id]
            cached = {
                "frames": reader.images(camera)[: info.length],
                "state": reader.states()[: info.length],
                "actions": reader.actions()[: info.length],
            }
            self._cache[episode_id] = cached
        return cached

    def __getitem__(self, i: int) -> dict[str, Any]:
        episode_id, t = self.index[i]
        info = self.episodes[episode_id]
        ep = self._episode(episode_id)
        n, c, k = info.length, self.config.context, self.config.chunk

        past = np.arange(t - c + 1, t + 1)
        frame_steps = np.concatenate([[0], past]) if self.config.anchor_first else past
        frames_mask = frame_steps >= 0
        if self.config.anchor_first:
            frames_mask[0] = True
        ahead = np.arange(t, t + k)
        sample: dict[str, Any] = {
            "frames": ep["frames"][np.clip(frame_steps, 0, None)],
            "frames_mask": frames_mask,
            "state": ep["state"][t],
            "actions": ep["actions"][np.clip(ahead, None, n - 1)],
            "actions_mask": ahead < n,
            "instruction": info.instruction,
            "task": info.task,
            "episode_id": episode_id,
            "step": t,
            "success": np.float32({"true": 1.0, "false": 0.0}.get(info.success, math.nan)),
        }
        if self.config.future:
            future = ahead + 1
            sample["future_frames"] = ep["frames"][np.clip(future, None, n - 1)]
            sample["future_mask"] = future < n
        return sample
