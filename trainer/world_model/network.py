"""The chunk denoiser: K future frames generated jointly, each modulated by its own action (WMPO §3.2).

Shapes (B trajectories, C = 1 + M context frames, K frames per chunk, A action dims, P = patch):

    noisy   float [B, K, 3, H, W]   x_t of the K frames being generated, in [-1, 1]
    context float [B, C, 3, H, W]   index 0 = reference (episode's first) frame, then M memory frames, oldest first
    actions float [B, K, A]         normalised actions; frame k follows action k
    t       float [B]               rectified-flow time in [0, 1] (1 = pure noise)
    ->      float [B, K, 3, H, W]   the model's estimate of the clean frames x_0

Design, and where it departs from the papers:

- Pixel space, no VAE: the frames are folded space-to-depth (P×P patches → P²·3 channels), which is an exact,
  training-free "autoencoder", so the denoiser runs on a (H/P)×(W/P) grid. WMPO/WoVR use an SDXL/Wan VAE and a
  billion-parameter DiT; on a CPU we need ~1000× less compute per frame.
- Per-frame action conditioning (WMPO "frame-level action control", t_s = t_s + a_s): every generated frame k gets
  an embedding e_k = time(t) + action([a_k, Σ_{j≤k} a_j / K]) + index(k). e_k drives a FiLM (scale/shift) of frame
  k's stem features and of frame k's output head; the concatenation of all e_k, projected, joins the UNet's own
  timestep embedding (``class_embed_type="identity"``) for the shared trunk. The cumulative sum is there because
  Meta-World/joint-delta actions integrate into position.
- The K frames are stacked in channels through one diffusers ``UNet2DModel`` trunk: one pass per chunk instead of
  one per frame (≈4× faster than per-frame batching at equal width), and joint generation keeps the chunk
  temporally consistent.
- x_0-prediction with a residual on the last memory frame: the head predicts the change from the newest context
  frame (a copy of it is the identity baseline), which is what a 1–2 step sampler needs (WMPO's target is ε).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from diffusers import UNet2DModel
from torch import nn
from torch.nn import functional as F

from trainer.world_model.config import WorldModelConfig


def space_to_depth(x: torch.Tensor, patch: int) -> torch.Tensor:
    """[..., 3, H, W] -> [..., 3·P², H/P, W/P]."""
    lead = x.shape[:-3]
    y = F.pixel_unshuffle(x.reshape(-1, *x.shape[-3:]), patch)
    return y.reshape(*lead, *y.shape[-3:])


def depth_to_space(x: torch.Tensor, patch: int) -> torch.Tensor:
    """[..., 3·P², h, w] -> [..., 3, h·P, w·P]."""
    lead = x.shape[:-3]
    y = F.pixel_shuffle(x.reshape(-1, *x.shape[-3:]), patch)
    return y.reshape(*lead, *y.shape[-3:])


def sinusoidal(t: torch.Tensor, dim: int) -> torch.Tensor:
    """[B] in [0, 1] -> [B, dim] (scaled to the 0..1000 range diffusion embeddings are tuned for)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * 1000.0 * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class FrameEmbedding(nn.Module):
    """e_k = time(t) + action(a_k, cumsum) + index(k): [B], [B, K, A] -> [B, K, D]."""

    def __init__(self, action_dim: int, chunk_size: int, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.time = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.action = nn.Sequential(nn.Linear(2 * action_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.index = nn.Parameter(torch.zeros(chunk_size, dim))

    def forward(self, t: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        k = actions.shape[1]
        cumulative = torch.cumsum(actions, dim=1) / k
        a = self.action(torch.cat([actions, cumulative], dim=-1))
        return self.time(sinusoidal(t, self.dim))[:, None] + a + self.index[None, :k]


class FiLM(nn.Module):
    """Scale/shift [N, F, h, w] features by a per-item embedding [N, D]; zero-initialised (starts as identity)."""

    def __init__(self, dim: int, features: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 2 * features)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(F.silu(e)).chunk(2, dim=-1)
        return h * (1 + scale[..., None, None]) + shift[..., None, None]


class ChunkDenoiser(nn.Module):
    """x_t of K frames + context + actions + t -> x_0 estimate of the K frames (shapes in the module docstring)."""

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        p2c = 3 * cfg.patch**2
        f, k, c = cfg.frame_features, cfg.chunk_size, cfg.context_frames
        self.embed = FrameEmbedding(cfg.action_dim, k, cfg.action_embed_dim)
        self.noisy_stem = nn.Conv2d(p2c, f, 3, padding=1)
        self.noisy_film = FiLM(cfg.action_embed_dim, f)
        self.context_stem = nn.Conv2d(p2c, f, 3, padding=1)
        self.context_slot = nn.Parameter(torch.zeros(c, f, 1, 1))  # which context slot: reference or memory i
        time_dim = cfg.trunk_channels[0] * 4
        self.trunk_condition = nn.Linear(k * cfg.action_embed_dim, time_dim)
        levels = len(cfg.trunk_channels)
        self.trunk: Any = UNet2DModel(  # Any: diffusers' ModelMixin hides __call__ from mypy
            sample_size=cfg.image_size[0] // cfg.patch,
            in_channels=(c + k) * f,
            out_channels=k * f,
            block_out_channels=cfg.trunk_channels,
            down_block_types=("DownBlock2D",) * levels,
            up_block_types=("UpBlock2D",) * levels,
            layers_per_block=cfg.layers_per_block,
            norm_num_groups=8,
            class_embed_type="identity",
        )
        self.head_norm = nn.GroupNorm(min(8, f), f)
        self.head_film = FiLM(cfg.action_embed_dim, f)
        self.head_out = nn.Conv2d(f, p2c, 3, padding=1)
        with torch.no_grad():  # starts as "copy the newest context frame"
            self.head_out.weight.zero_()
            if self.head_out.bias is not None:
                self.head_out.bias.zero_()

    def forward(
        self, noisy: torch.Tensor, context: torch.Tensor, actions: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        cfg = self.cfg
        b, k = noisy.shape[:2]
        c = context.shape[1]
        f = cfg.frame_features
        e = self.embed(t, actions)  # [B, K, D]
        xs = space_to_depth(noisy, cfg.patch)  # [B, K, 3P², h, w]
        cs = space_to_depth(context, cfg.patch)  # [B, C, 3P², h, w]
        hgt, wid = xs.shape[-2:]
        hx = self.noisy_stem(xs.flatten(0, 1))
        hx = self.noisy_film(hx, e.flatten(0, 1)).reshape(b, k * f, hgt, wid)
        hc = self.context_stem(cs.flatten(0, 1)).reshape(b, c, f, hgt, wid) + self.context_slot[None]
        h = torch.cat([hc.reshape(b, c * f, hgt, wid), hx], dim=1)
        cond = self.trunk_condition(e.flatten(1))
        h = self.trunk(h, t * 1000.0, class_labels=cond).sample  # [B, K·F, h, w]
        h = h.reshape(b * k, f, hgt, wid)
        h = F.silu(self.head_film(self.head_norm(h), e.flatten(0, 1)))
        delta = self.head_out(h).reshape(b, k, -1, hgt, wid)
        return depth_to_space(cs[:, -1:] + delta, cfg.patch)
