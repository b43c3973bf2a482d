"""Rectified flow (WMPO §3.2 ``rflow``): the training loss and the few-step sampler.

x_t = (1 - t)·x_0 + t·ε with t ~ logit-normal (WMPO code); the network predicts x_0 (see network.py for why),
so the velocity the sampler integrates is v = (x_t - x_0)/t. Sampling runs Euler steps on t = 1 → 0; with one
step the result is the network's x_0 estimate from pure noise. Context frames are noised at a level drawn from
[0, context_noise] in training only (noisy-context training, WMPO §3.2 / WoVR C.1).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from trainer.world_model.network import ChunkDenoiser


def logit_normal(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """t ~ sigmoid(N(0, 1)): [n] in (0, 1)."""
    return torch.sigmoid(torch.randn(n, generator=generator))


def sampler_times(steps: int) -> tuple[float, ...]:
    """The t at which :func:`sample_chunk` calls the network with ``steps`` Euler steps: 1, (steps-1)/steps, ..."""
    return tuple(float(t) for t in torch.linspace(1.0, 0.0, steps + 1)[:-1])


def training_times(
    n: int, generator: torch.Generator | None = None, anchors: tuple[float, ...] = (), anchor_share: float = 0.0
) -> torch.Tensor:
    """t for a training batch: logit-normal, except an ``anchor_share`` of the batch drawn from ``anchors``.

    The logit-normal puts almost no mass near t = 1 (P(t > 0.95) ≈ 0.2%), yet a 1–2 step sampler's first and
    most consequential call is at t = 1 exactly: the anchors are the sampler's own times, trained directly."""
    t = logit_normal(n, generator)
    if anchors and anchor_share > 0:
        pick = torch.rand(n, generator=generator) < anchor_share
        which = torch.randint(len(anchors), (n,), generator=generator)
        t = torch.where(pick, torch.tensor(anchors, dtype=t.dtype)[which], t)
    return t


def flow_loss(
    net: ChunkDenoiser,
    context: torch.Tensor,  # float [B, C, 3, H, W] in [-1, 1]
    target: torch.Tensor,  # float [B, K, 3, H, W] in [-1, 1]
    actions: torch.Tensor,  # float [B, K, A], normalised
    context_noise: float,
    generator: torch.Generator | None = None,
    anchors: tuple[float, ...] = (),
    anchor_share: float = 0.0,
) -> torch.Tensor:
    """Mean squared error of the x_0 estimate at a random t (see :func:`training_times`), with the context
    perturbed (noisy-context training)."""
    b = target.shape[0]
    t = training_times(b, generator, anchors, anchor_share).to(target.device)
    eps = torch.randn(target.shape, generator=generator).to(target.device)
    noisy = (1 - t)[:, None, None, None, None] * target + t[:, None, None, None, None] * eps
    if context_noise > 0:
        level = torch.rand(b, generator=generator).to(target.device) * context_noise
        ceps = torch.randn(context.shape, generator=generator).to(target.device)
        lv = level[:, None, None, None, None]
        context = (1 - lv) * context + lv * ceps
    return F.mse_loss(net(noisy, context, actions, t), target)


@torch.inference_mode()
def sample_chunk(
    net: ChunkDenoiser,
    context: torch.Tensor,  # float [B, C, 3, H, W]
    actions: torch.Tensor,  # float [B, K, A], normalised
    steps: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Euler integration of the rectified flow from noise: -> float [B, K, 3, H, W] in [-1, 1]."""
    b, k = actions.shape[:2]
    shape = (b, k, *context.shape[2:])
    x = torch.randn(shape, generator=generator).to(context.device)
    ts = torch.linspace(1.0, 0.0, steps + 1)
    x0 = x
    for i in range(steps):
        t_now, t_next = float(ts[i]), float(ts[i + 1])
        x0 = net(x, context, actions, torch.full((b,), t_now, device=context.device)).clamp(-1, 1)
        if t_next > 0:
            eps = (x - (1 - t_now) * x0) / t_now
            x = (1 - t_next) * x0 + t_next * eps
    return x0
