"""The learned stand-ins for the robot during RL (docs/architecture.md, "Contracts"). Batched everywhere.

Shapes: B trajectories, C context frames, K frames per action chunk, A action dims, H×W pixels.
Frames are uint8 ``[B, T, H, W, 3]`` numpy arrays at the boundary, the same pixels the policy reads.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class WorldModel(Protocol):
    chunk_size: int  # K frames generated per action chunk
    image_size: tuple[int, int]  # (H, W)
    seed: int  # the imagination's noise: two policies judged with one seed meet the same imagined noise

    def reset(
        self,
        context_frames: np.ndarray,  # uint8 [B, C, H, W, 3]; index 0 is the reference (first) frame
        context_actions: np.ndarray | None = None,  # float32 [B, C-1, A], the actions between them (KIR)
    ) -> Any:
        """Start B imagined trajectories; returns an opaque rollout state."""
        ...

    def step(self, state: Any, action_chunk: np.ndarray) -> tuple[np.ndarray, Any]:
        """Imagine the next K frames, uint8 [B, K, H, W, 3], for float32 [B, K, A] actions."""
        ...

    def rollout(self, first_frames: np.ndarray, actions: np.ndarray, seed: int | None = None) -> np.ndarray:
        """Replay B action sequences open-loop from their first frames (uint8 [B, H, W, 3]): float32 [B, T, A]
        -> uint8 [B, T, H, W, 3], frame t the one after action t."""
        ...


@runtime_checkable
class RewardModel(Protocol):
    threshold: float  # calibrated on held-out episodes

    def score(self, frames: np.ndarray) -> np.ndarray:
        """p(success) per frame, float32 [B, T], for uint8 frames [B, T, H, W, 3]."""
        ...

    def first_success(self, frames: np.ndarray) -> np.ndarray:
        """Index of the first step whose score crosses the threshold, int64 [B]; -1 where none does."""
        ...
