"""Open-loop replay: a world model plays back the recorded actions of real episodes from their real first frames.

The reward model trains on these replays (``trainer.reward_model.imagined_counterparts``: it must judge imagined
frames), and ``trainer.bench.imagination_quality`` scores them against the real frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trainer.protocols import WorldModel
from trainer.world_model.data import RecordedEpisode


def replay(
    world_model: WorldModel, episodes: Sequence[RecordedEpisode], batch: int = 32, seed: int = 0
) -> list[np.ndarray]:
    """Open-loop replay of each episode's recorded actions from its real first frame: -> per episode uint8
    [T-1, H, W, 3], imagined frames 1..T-1 (frame t follows action t-1). Episodes of any lengths are batched
    by padding their actions with zeros."""
    out: list[np.ndarray] = [np.zeros(0)] * len(episodes)
    order = sorted(range(len(episodes)), key=lambda i: len(episodes[i]))
    for s in range(0, len(order), batch):
        group = order[s : s + batch]
        t_max = max(len(episodes[i]) - 1 for i in group)
        if t_max <= 0:
            for i in group:
                out[i] = episodes[i].frames[1:]
            continue
        a_dim = episodes[group[0]].actions.shape[1]
        actions = np.zeros((len(group), t_max, a_dim), np.float32)
        for j, i in enumerate(group):
            n = len(episodes[i]) - 1
            actions[j, :n] = episodes[i].actions[:n]
        first = np.stack([episodes[i].frames[0] for i in group])
        video = world_model.rollout(first, actions, seed=seed + s)
        for j, i in enumerate(group):
            out[i] = video[j, : len(episodes[i]) - 1]
    return out
