"""GRPO as in WMPO (arXiv 2511.09515, §3, Table 4) with WoVR's options (arXiv 2602.13977): one file, top to bottom.

The update is on-policy GRPO over *trajectories* that someone else rolled out: imagined in the world
model (``trainer/imagine.py``) or run in the simulator (``trainer/sim_grpo.py``). Both hand over a
:class:`Rollouts` batch of ``N = groups × G`` trajectories of ``C`` action chunks.

1. Outcome reward ``R_i ∈ {0, 1}`` per trajectory (the reward model's, or the simulator's, success).
2. Group-normalised advantage ``Â_i = (R_i − mean_g R) / (std_g R + eps)`` over the G rollouts of one
   initial state (WMPO Eq. 4; ``adv_type: grpo`` in WoVR).
3. Dynamic sampling: groups whose success rate is below 0.1 or above 0.9 carry no signal (all
   advantages 0) and are dropped; more groups are drawn until the batch is full, with a bounded number
   of attempts (WMPO ``filter_accuracy``, ``accuracy_lower_bound=0.1, upper=0.9``; WoVR ``filter_rewards``).
4. Clipped surrogate per action chunk with asymmetric clipping ε_low 0.20, ε_high 0.28 (DAPO; both
   papers), no KL term and no reference model (there is no setting for one), no entropy bonus.
5. Masking: chunks after the first success are not in the loss (WMPO ``generate_traj_mask``); a KIR
   prefix is never in the batch at all (it is world-model context, not a policy decision; WoVR's KIR).
6. Aggregation: token-mean over all valid chunks of the mini-batch (WMPO / WoVR code,
   ``loss_agg_func: token-mean``), or WoVR's length-normalised objective
   ``(1/N) Σ_i (1/T_i^valid) Σ_t`` (Eq. 11) with ``length_normalised=True``.
7. AdamW, gradient-norm clip 1.0 (both papers).

Where this departs from the papers (and why):

- The ratio is per *action chunk*: ``ρ_t = exp(log π(chunk_t) − log π_old(chunk_t))`` with the chunk
  log-prob the sum of its K×A token log-probs (WMPO Eq. 3). WoVR clips per token
  (``logprob_type: token_level``); the ``Policy`` protocol hands back chunk log-probs only.
- Learning rate: the papers use 5e-6 (WMPO) / 2e-5 (WoVR) on a 7B OpenVLA-OFT; our policies are a few
  million parameters trained from scratch, where such a rate does nothing in a few dozen updates. The
  ``"cpu"`` preset uses a larger rate (measured in ``flywheel bench paper``); ``"paper"`` keeps 5e-6.
- Batch: WMPO draws 64 initial states × 8 = 512 trajectories per update; the ``"cpu"`` preset draws
  8 × 8 = 64 so that a 2-core CPU can run tens of updates.
- Dynamic sampling gives up after ``max_draws`` draws and updates on the groups it has (or skips the
  update when it has none) instead of drawing forever: on a tiny world model every group can be
  degenerate, and the statistics say so (``groups_kept``/``groups_drawn``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from data_store.schema import Observation
from vla.protocol import TrainablePolicy


@dataclass(frozen=True)
class GRPOConfig:
    group_size: int = 8  # G rollouts per initial state (both papers)
    groups_per_batch: int = 8  # initial states per update (WMPO: 64)
    temperature: float = 1.6  # sampling temperature (both papers); log-probs use the same one
    clip_low: float = 0.20  # ε_low (DAPO-style asymmetric clip, both papers)
    clip_high: float = 0.28  # ε_high
    lr: float = 5e-6  # WMPO Table 4 (WoVR: 2e-5)
    weight_decay: float = 0.01  # WoVR AdamW
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0  # both papers
    filter_low: float = 0.1  # drop groups with success rate < 0.1 ...
    filter_high: float = 0.9  # ... or > 0.9 (both papers)
    dynamic_sampling: bool = True
    max_draws: int = 4  # bounded refill: at most this many draws of `groups_per_batch` groups per update
    length_normalised: bool = False  # WoVR Eq. 11 (1/T_valid per trajectory) instead of token-mean
    minibatches: int = 1  # gradient steps per batch (WMPO: 512 / 128 = 4)
    epochs: int = 1  # passes over the batch (on-policy: 1)
    adv_eps: float = 1e-6


PRESETS: dict[str, GRPOConfig] = {
    "paper": GRPOConfig(groups_per_batch=64, minibatches=4),  # WMPO Table 4
    "cpu": GRPOConfig(groups_per_batch=8, lr=1e-4, minibatches=2),  # tiny policy, 2 CPU cores
    "tiny": GRPOConfig(group_size=4, groups_per_batch=2, lr=1e-4, max_draws=2),  # tests
}


# ----------------------------------------------------------------------------------------------- data


@dataclass
class Rollouts:
    """N = groups × G trajectories, each C action chunks long (padded; ``mask`` says which chunks count).

    ``observations[i][c]`` is what the policy saw before chunk c of trajectory i; trajectories of one group
    are consecutive (``i // group_size`` is the group).
    """

    observations: list[list[Observation]]  # [N][C]
    token_ids: torch.Tensor  # int64 [N, C, K, A]
    old_logprob: torch.Tensor  # float32 [N, C], from sampling, no grad
    mask: torch.Tensor  # bool [N, C]: a policy decision that is in the loss
    success: torch.Tensor  # float32 [N] ∈ {0, 1}: the outcome reward
    group_size: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_groups(self) -> int:
        return int(self.success.shape[0]) // self.group_size

    def group_success_rate(self) -> torch.Tensor:
        """float [groups]."""
        return self.success.float().view(-1, self.group_size).mean(dim=1)

    def select_groups(self, groups: Sequence[int]) -> Rollouts:
        rows = [g * self.group_size + j for g in groups for j in range(self.group_size)]
        idx = torch.as_tensor(rows, dtype=torch.long)
        return Rollouts(
            observations=[self.observations[r] for r in rows],
            token_ids=self.token_ids[idx],
            old_logprob=self.old_logprob[idx],
            mask=self.mask[idx],
            success=self.success[idx],
            group_size=self.group_size,
            info=dict(self.info),
        )

    @staticmethod
    def concat(parts: Sequence[Rollouts]) -> Rollouts:
        """Join batches, padding the chunk axis to the longest."""
        c_max = max(int(p.mask.shape[1]) for p in parts)

        def pad(t: torch.Tensor, value: float | bool | int) -> torch.Tensor:
            extra = c_max - int(t.shape[1])
            if extra == 0:
                return t
            shape = (t.shape[0], extra, *t.shape[2:])
            return torch.cat([t, torch.full(shape, value, dtype=t.dtype)], dim=1)

        observations: list[list[Observation]] = []
        for p in parts:
            for row in p.observations:
                observations.append(row + [row[-1]] * (c_max - len(row)))  # padding is masked out
        return Rollouts(
            observations=observations,
            token_ids=torch.cat([pad(p.token_ids, 0) for p in parts]),
            old_logprob=torch.cat([pad(p.old_logprob, 0.0) for p in parts]),
            mask=torch.cat([pad(p.mask, False) for p in parts]),
            success=torch.cat([p.success for p in parts]),
            group_size=parts[0].group_size,
            info=dict(parts[0].info),
        )


# ------------------------------------------------------------------------------------------ the math


def group_advantages(success: torch.Tensor, group_size: int, eps: float = 1e-6) -> torch.Tensor:
    """Â_i = (R_i − mean_g) / (std_g + eps), float [N] for rewards float [N] (WMPO Eq. 4).

    std is the unbiased one (torch default, as in verl's GRPO); a degenerate group gets Â = 0.
    """
    r = success.float().view(-1, group_size)
    mean = r.mean(dim=1, keepdim=True)
    std = r.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(mean)
    return ((r - mean) / (std + eps)).view(-1)


def informative_groups(success_rate: torch.Tensor, low: float = 0.1, high: float = 0.9) -> torch.Tensor:
    """bool [groups]: groups whose success rate lies in [low, high] (dynamic sampling as in WMPO, arXiv 2511.09515)."""
    return (success_rate >= low) & (success_rate <= high)


def clipped_surrogate(
    new_logprob: torch.Tensor,  # [M] chunk log-probs under the current weights
    old_logprob: torch.Tensor,  # [M] at sampling time
    advantage: torch.Tensor,  # [M] the trajectory's advantage, per chunk
    clip_low: float,
    clip_high: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-chunk loss −min(ρÂ, clip(ρ, 1−ε_low, 1+ε_high)Â) and a bool [M] "was clipped"."""
    ratio = torch.exp(new_logprob - old_logprob)
    unclipped = ratio * advantage
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * advantage
    loss = -torch.minimum(unclipped, clipped)
    return loss, (clipped < unclipped)


def chunk_weights(mask: torch.Tensor, length_normalised: bool) -> torch.Tensor:
    """float [N, C]: each valid chunk's weight in the mean (token-mean, or WoVR's 1/T_valid per trajectory)."""
    m = mask.float()
    if not length_normalised:
        return m
    t_valid = m.sum(dim=1, keepdim=True).clamp(min=1.0)
    return m / t_valid


def grpo_loss(
    new_logprob: torch.Tensor,  # [M]
    old_logprob: torch.Tensor,  # [M]
    advantage: torch.Tensor,  # [M]
    weight: torch.Tensor,  # [M] from chunk_weights, > 0
    cfg: GRPOConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted mean of the clipped surrogate over M valid chunks, and its statistics."""
    per_chunk, was_clipped = clipped_surrogate(new_logprob, old_logprob, advantage, cfg.clip_low, cfg.clip_high)
    loss = (per_chunk * weight).sum() / weight.sum().clamp(min=1e-12)
    with torch.no_grad():
        log_ratio = new_logprob - old_logprob
        stats = {
            "clip_frac": float(was_clipped.float().mean()),
            "approx_kl": float(((log_ratio.exp() - 1) - log_ratio).mean()),  # k3 estimator, monitored only
            "ratio_mean": float(log_ratio.exp().mean()),
        }
    return loss, stats


# ------------------------------------------------------------------------------------- the sampling


DrawGroups = Callable[[int], Rollouts]  # draw n groups of G rollouts with the current policy


def collect_batch(draw: DrawGroups, cfg: GRPOConfig) -> tuple[Rollouts | None, dict[str, float]]:
    """Draw groups until ``groups_per_batch`` informative ones are kept or ``max_draws`` draws are spent."""
    kept: list[Rollouts] = []
    n_kept = n_drawn = n_draws = 0
    success_sum = 0.0
    while n_kept < cfg.groups_per_batch and n_draws < (cfg.max_draws if cfg.dynamic_sampling else 1):
        rollouts = draw(cfg.groups_per_batch)
        n_draws += 1
        n_drawn += rollouts.num_groups
        success_sum += float(rollouts.success.sum())
        rate = rollouts.group_success_rate()
        keep = informative_groups(rate, cfg.filter_low, cfg.filter_high) if cfg.dynamic_sampling else rate >= 0
        groups = [int(g) for g in torch.nonzero(keep).flatten()][: cfg.groups_per_batch - n_kept]
        if groups:
            kept.append(rollouts.select_groups(groups))
            n_kept += len(groups)
    stats = {
        "groups_drawn": float(n_drawn),
        "groups_kept": float(n_kept),
        "filtered_frac": 1.0 - n_kept / max(n_drawn, 1),
        "success_rate_drawn": success_sum / max(n_drawn * cfg.group_size, 1),
        "draws": float(n_draws),
    }
    return (Rollouts.concat(kept) if kept else None), stats


# -------------------------------------------------------------------------------------- the update


def make_optimizer(policy: TrainablePolicy, cfg: GRPOConfig) -> torch.optim.Optimizer:
    params = [p for p in policy.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def update(
    policy: TrainablePolicy, optimizer: torch.optim.Optimizer, batch: Rollouts, cfg: GRPOConfig
) -> dict[str, float]:
    """One GRPO update: ``epochs`` passes of ``minibatches`` gradient steps over the valid chunks of ``batch``."""
    advantages = group_advantages(batch.success, batch.group_size, cfg.adv_eps)  # [N]
    weights = chunk_weights(batch.mask, cfg.length_normalised)  # [N, C]
    rows, cols = torch.nonzero(batch.mask, as_tuple=True)  # the M valid chunks
    m = int(rows.shape[0])
    stats: dict[str, float] = {
        "adv_std": float(advantages.std()) if advantages.numel() > 1 else 0.0,
        "valid_chunks": float(m),
        "batch_success": float(batch.success.mean()),
    }
    if m == 0:
        return stats
    totals: dict[str, float] = {}
    steps = 0
    for _ in range(cfg.epochs):
        order = torch.randperm(m)
        for part in torch.chunk(order, max(1, min(cfg.minibatches, m))):
            r, c = rows[part], cols[part]
            obs = [batch.observations[int(i)][int(j)] for i, j in zip(r, c, strict=True)]
            new_lp = policy.log_prob(obs, batch.token_ids[r, c], temperature=cfg.temperature)
            loss, s = grpo_loss(new_lp, batch.old_logprob[r, c], advantages[r], weights[r, c], cfg)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(
                [p for g in optimizer.param_groups for p in g["params"]], cfg.grad_clip
            )
            optimizer.step()
            s["loss"] = float(loss.detach())
            s["grad_norm"] = float(grad_norm)
            for k, v in s.items():
                totals[k] = totals.get(k, 0.0) + v
            steps += 1
    stats.update({k: v / steps for k, v in totals.items()})
    return stats


# ---------------------------------------------------------------------------------------- the loop


def train_grpo(
    policy: TrainablePolicy,
    draw: DrawGroups,
    cfg: GRPOConfig,
    iterations: int,
    on_iteration: Callable[[int, dict[str, float]], None] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> list[dict[str, float]]:
    """``iterations`` × (collect a filtered batch with the current policy → one GRPO update)."""
    optimizer = optimizer or make_optimizer(policy, cfg)
    history: list[dict[str, float]] = []
    for it in range(iterations):
        t0 = time.perf_counter()
        batch, stats = collect_batch(draw, cfg)
        t1 = time.perf_counter()
        if batch is not None:
            _train_mode(policy, True)
            stats.update(update(policy, optimizer, batch, cfg))
            _train_mode(policy, False)
        stats.update({"iteration": float(it), "rollout_s": t1 - t0, "update_s": time.perf_counter() - t1})
        stats["updated"] = float(batch is not None)
        history.append(stats)
        if on_iteration is not None:
            on_iteration(it, stats)
    return history


def _train_mode(policy: TrainablePolicy, on: bool) -> None:
    """Dropout off while sampling so that old log-probs match the policy that acted."""
    fn = getattr(policy, "train", None)
    if callable(fn):
        fn(on)


def config(preset: str = "cpu", **overrides: Any) -> GRPOConfig:
    """A named preset with overrides (``None`` values are ignored)."""
    if preset not in PRESETS:
        raise ValueError(f"GRPO preset: expected one of {sorted(PRESETS)}, got {preset!r}")
    return replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})
