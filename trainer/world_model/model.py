"""``PixelWorldModel``: the imagined robot. Implements ``trainer.protocols.WorldModel``.

    wm = PixelWorldModel.load("runs/wm")                    # or PixelWorldModel(ChunkDenoiser(cfg))
    state = wm.reset(context_frames)                        # uint8 [B, C, H, W, 3], index 0 = reference frame
    frames, state = wm.step(state, action_chunk)            # float32 [B, K, A] -> uint8 [B, K, H, W, 3]
    frames = wm.rollout(first_frames, actions)              # uint8 [B, H, W, 3], float32 [B, T, A] -> [B, T, H, W, 3]

Autoregressive, chunk by chunk (WMPO §3.1; WoVR, arXiv 2602.13977): the reference frame stays fixed for the whole
rollout and the last M generated frames become the next memory. Sampling is seeded per ``reset`` (``seed``), so the same
seed gives the same imagined frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.world_model.checkpoint import read_model_dir, write_model_dir
from trainer.world_model.config import WorldModelConfig
from trainer.world_model.flow import sample_chunk
from trainer.world_model.kinds import register_world_model
from trainer.world_model.network import ChunkDenoiser

KIND = "world-model"


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float [..., 3, H, W] in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(127.5).sub_(1.0)
    return x.movedim(-1, -3)


def tensor_to_frames(x: torch.Tensor) -> np.ndarray:
    """float [..., 3, H, W] in [-1, 1] -> uint8 [..., H, W, 3]."""
    return x.movedim(-3, -1).add(1.0).mul(127.5).round_().clamp_(0, 255).to(torch.uint8).numpy()


@dataclass
class RolloutState:
    """The context of B imagined trajectories: the fixed reference frame and the M most recent frames."""

    reference: torch.Tensor  # float [B, 1, 3, H, W]
    memory: torch.Tensor  # float [B, M, 3, H, W], oldest first
    generator: torch.Generator
    steps_done: int = 0


@register_world_model(KIND)
class PixelWorldModel:
    """Action-conditioned pixel-space video model with few-step rectified-flow sampling."""

    def __init__(self, net: ChunkDenoiser, *, sampling_steps: int | None = None, seed: int = 0) -> None:
        self.net = net.eval()
        self.config: WorldModelConfig = net.cfg
        self.chunk_size = self.config.chunk_size
        self.image_size = self.config.image_size
        self.sampling_steps = sampling_steps or self.config.sampling_steps
        if not 1 <= self.sampling_steps <= 10:
            raise ValueError(f"sampling_steps must be in 1..10, got {self.sampling_steps}")
        self.seed = seed
        mean = self.config.action_mean or (0.0,) * self.config.action_dim
        std = self.config.action_std or (1.0,) * self.config.action_dim
        self._mean = torch.tensor(mean, dtype=torch.float32)
        self._std = torch.tensor(std, dtype=torch.float32)

    # -- the WorldModel protocol ------------------------------------------------------------------------------
    def reset(
        self, context_frames: np.ndarray, context_actions: np.ndarray | None = None, seed: int | None = None
    ) -> RolloutState:
        """Start B trajectories from uint8 [B, C, H, W, 3] (index 0 = reference frame, then the most recent frames).

        ``context_actions`` (float32 [B, C-1, A], KIR starts) are accepted and checked but not used: the memory
        frames already show where the arm is, and the denoiser conditions on the actions of the chunk it generates.
        With C-1 < M the oldest memory frame is repeated (WMPO fills its context queue with the first frame)."""
        frames = np.asarray(context_frames)
        h, w = self.image_size
        if frames.dtype != np.uint8 or frames.ndim != 5 or frames.shape[2:] != (h, w, 3):
            raise ValueError(f"context_frames: expected uint8 [B, C, {h}, {w}, 3], got {frames.dtype} {frames.shape}")
        if context_actions is not None and np.asarray(context_actions).shape[:2] != (
            frames.shape[0],
            frames.shape[1] - 1,
        ):
            raise ValueError(f"context_actions: expected [B, C-1, A], got {np.asarray(context_actions).shape}")
        x = frames_to_tensor(frames)
        m = self.config.memory_frames
        recent = x[:, 1:] if x.shape[1] > 1 else x[:, :1]
        recent = recent[:, -m:]
        if recent.shape[1] < m:
            recent = torch.cat([recent[:, :1].expand(-1, m - recent.shape[1], -1, -1, -1), recent], dim=1)
        gen = torch.Generator().manual_seed(self.seed if seed is None else seed)
        return RolloutState(reference=x[:, :1], memory=recent.contiguous(), generator=gen)

    def step(self, state: RolloutState, action_chunk: np.ndarray) -> tuple[np.ndarray, RolloutState]:
        """float32 [B, K, A] -> (uint8 [B, K, H, W, 3], next state). K may be shorter than chunk_size."""
        actions = torch.as_tensor(np.asarray(action_chunk, dtype=np.float32))
        b, k = actions.shape[:2]
        if b != state.memory.shape[0] or actions.shape[2] != self.config.action_dim or k > self.chunk_size:
            raise ValueError(
                f"action_chunk: expected [{state.memory.shape[0]}, <= {self.chunk_size}, {self.config.action_dim}], "
                f"got {tuple(actions.shape)}"
            )
        padded = torch.zeros(b, self.chunk_size, self.config.action_dim)
        padded[:, :k] = actions
        norm = (padded - self._mean) / self._std
        context = torch.cat([state.reference, state.memory], dim=1)
        x = sample_chunk(self.net, context, norm, self.sampling_steps, state.generator)[:, :k]
        memory = torch.cat([state.memory, x], dim=1)[:, -self.config.memory_frames :]
        new = RolloutState(state.reference, memory.contiguous(), state.generator, state.steps_done + k)
        return tensor_to_frames(x), new

    # -- whole episodes -----------------------------------------------------------------------------------------
    def rollout(self, first_frames: np.ndarray, actions: np.ndarray, seed: int | None = None) -> np.ndarray:
        """Replay B action sequences open-loop from their first frames.

        first_frames uint8 [B, H, W, 3] (or a context [B, C, H, W, 3]); actions float32 [B, T, A]
        -> uint8 [B, T, H, W, 3], frame t being the one after action t."""
        first = np.asarray(first_frames)
        ctx = first[:, None] if first.ndim == 4 else first
        state = self.reset(ctx, seed=seed)
        acts = np.asarray(actions, dtype=np.float32)
        out = []
        for s in range(0, acts.shape[1], self.chunk_size):
            frames, state = self.step(state, acts[:, s : s + self.chunk_size])
            out.append(frames)
        return np.concatenate(out, axis=1)

    # -- persistence --------------------------------------------------------------------------------------------
    def save(self, out: str | Path, manifest: dict[str, Any] | None = None) -> Path:
        return write_model_dir(out, self.net, self.config.to_json(), kind=KIND, manifest=manifest)

    @classmethod
    def load(cls, path: str | Path, *, sampling_steps: int | None = None, seed: int = 0) -> PixelWorldModel:
        weights, config, _ = read_model_dir(path, KIND)
        net = ChunkDenoiser(WorldModelConfig.from_json(config))
        net.load_state_dict(weights)
        return cls(net, sampling_steps=sampling_steps, seed=seed)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())
