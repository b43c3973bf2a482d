"""The GRPO math of trainer/grpo.py: advantages, clipping on both sides, masking, the group filter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_store.schema import Observation
from trainer import grpo


def test_group_advantages_are_normalised_per_group() -> None:
    success = torch.tensor([1, 0, 0, 0, 1, 1, 1, 0], dtype=torch.float32)
    adv = grpo.group_advantages(success, group_size=4)
    for g in adv.view(2, 4):
        assert abs(float(g.mean())) < 1e-5
        assert abs(float(g.std()) - 1.0) < 1e-3  # unbiased std, as in verl
    # successes above the group mean, failures below
    assert (adv[success == 1] > 0).all() and (adv[success == 0] < 0).all()
    # a lone success in a group of four gets a larger advantage than one of three successes
    assert float(adv[0]) > float(adv[4])


def test_degenerate_group_has_zero_advantage() -> None:
    adv = grpo.group_advantages(torch.ones(4), group_size=4)
    assert torch.allclose(adv, torch.zeros(4))


def test_informative_groups_filter_bounds() -> None:
    rate = torch.tensor([0.0, 0.125, 0.5, 0.875, 1.0, 0.09, 0.91])
    keep = grpo.informative_groups(rate, 0.1, 0.9)
    assert keep.tolist() == [False, True, True, True, False, False, False]


def test_clipping_upper_side_for_positive_advantage() -> None:
    old = torch.zeros(3)
    new = torch.log(torch.tensor([1.0, 1.2, 1.5]))  # ratios 1.0, 1.2, 1.5
    adv = torch.ones(3)
    loss, clipped = grpo.clipped_surrogate(new.requires_grad_(), old, adv, 0.2, 0.28)
    # 1.5 is clipped to 1.28; 1.2 is inside (1 + ε_high = 1.28, asymmetric)
    assert torch.allclose(loss.detach(), -torch.tensor([1.0, 1.2, 1.28]), atol=1e-6)
    assert clipped.tolist() == [False, False, True]
    loss.sum().backward()


def test_clipping_lower_side_for_negative_advantage() -> None:
    old = torch.zeros(3)
    new = torch.log(torch.tensor([1.0, 0.85, 0.5])).requires_grad_()
    adv = -torch.ones(3)
    loss, _clipped = grpo.clipped_surrogate(new, old, adv, 0.2, 0.28)
    # for Â < 0 the pessimistic min keeps ratio 0.85 and clips 0.5 up to 1 - ε_low = 0.8
    assert torch.allclose(loss.detach(), torch.tensor([1.0, 0.85, 0.8]), atol=1e-6)
    loss.sum().backward()
    assert new.grad is not None
    assert float(new.grad[2]) == 0.0  # the clipped chunk sends no gradient
    assert float(new.grad[1]) != 0.0


def test_ratio_outside_the_trust_region_on_the_unhelpful_side_is_not_clipped() -> None:
    # Â > 0 and ratio < 1 - ε_low: the min picks the unclipped term, so the gradient still flows
    new = torch.log(torch.tensor([0.5])).requires_grad_()
    loss, clipped = grpo.clipped_surrogate(new, torch.zeros(1), torch.ones(1), 0.2, 0.28)
    loss.sum().backward()
    assert not bool(clipped[0]) and new.grad is not None and float(new.grad[0]) != 0.0


def test_masking_and_length_normalisation() -> None:
    mask = torch.tensor([[True, True, True, True], [True, False, False, False]])
    token_mean = grpo.chunk_weights(mask, length_normalised=False)
    assert token_mean.tolist() == [[1, 1, 1, 1], [1, 0, 0, 0]]
    per_traj = grpo.chunk_weights(mask, length_normalised=True)
    # WoVR Eq. 11: each trajectory weighs the same, whatever its valid length
    assert torch.allclose(per_traj.sum(dim=1), torch.ones(2))
    assert float(per_traj[1, 0]) == 1.0 and float(per_traj[0, 0]) == 0.25


def _rollouts(success: list[float], group_size: int, chunks: int = 3) -> grpo.Rollouts:
    n = len(success)
    obs = Observation(images={}, state=np.zeros(2, np.float32), instruction="x", timestamp=0.0)
    return grpo.Rollouts(
        observations=[[obs] * chunks for _ in range(n)],
        token_ids=torch.arange(n).view(n, 1, 1, 1).expand(n, chunks, 1, 1).clone(),
        old_logprob=torch.zeros(n, chunks),
        mask=torch.ones(n, chunks, dtype=torch.bool),
        success=torch.tensor(success, dtype=torch.float32),
        group_size=group_size,
    )


def test_collect_batch_refills_until_full_and_bounds_attempts() -> None:
    cfg = grpo.GRPOConfig(group_size=2, groups_per_batch=2, max_draws=5)
    draws = iter(
        [
            _rollouts([1, 1, 0, 1], 2),  # group 0 all-success: dropped; group 1 kept
            _rollouts([0, 0, 0, 0], 2),  # both dropped
            _rollouts([1, 0, 0, 1], 2),  # one more needed: first kept, second left over
        ]
    )
    batch, stats = grpo.collect_batch(lambda n: next(draws), cfg)
    assert batch is not None and batch.num_groups == 2
    assert batch.group_success_rate().tolist() == [0.5, 0.5]
    assert stats["groups_drawn"] == 6 and stats["groups_kept"] == 2 and stats["draws"] == 3
    # token ids prove which rows were kept: rows 2,3 of draw 1 and rows 0,1 of draw 3
    assert batch.token_ids[:, 0, 0, 0].tolist() == [2, 3, 0, 1]

    cfg = grpo.GRPOConfig(group_size=2, groups_per_batch=2, max_draws=3)
    batch, stats = grpo.collect_batch(lambda n: _rollouts([1, 1, 1, 1], 2), cfg)
    assert batch is None and stats["draws"] == 3 and stats["filtered_frac"] == 1.0


class _BanditPolicy(torch.nn.Module):
    """A categorical policy over 4 one-token 'chunks': enough to see GRPO move probability mass."""

    def __init__(self) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.zeros(4))

    def log_prob(self, batch: list[Observation], token_ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        logp = torch.log_softmax(self.logits / temperature, dim=-1)
        return logp[token_ids.view(len(batch), -1)].sum(dim=1)


def test_update_moves_mass_to_successful_chunks_and_ignores_masked_ones() -> None:
    torch.manual_seed(0)
    policy = _BanditPolicy()
    cfg = grpo.GRPOConfig(group_size=4, groups_per_batch=1, lr=0.05, temperature=1.0)
    opt = grpo.make_optimizer(policy, cfg)
    obs = Observation(images={}, state=np.zeros(1, np.float32), instruction="x", timestamp=0.0)
    tokens = torch.tensor([0, 1, 2, 3]).view(4, 1, 1, 1).expand(4, 2, 1, 1).clone()
    tokens[:, 1] = 3  # the second chunk always picks token 3 ...
    mask = torch.tensor([[True, False], [True, False], [True, False], [True, False]])  # ... but is masked out
    batch = grpo.Rollouts(
        observations=[[obs, obs] for _ in range(4)],
        token_ids=tokens,
        old_logprob=torch.full((4, 2), float(np.log(0.25))),
        mask=mask,
        success=torch.tensor([1.0, 0.0, 0.0, 0.0]),
        group_size=4,
    )
    for _ in range(5):
        grpo.update(policy, opt, batch, cfg)
    p = torch.softmax(policy.logits.detach(), -1)
    assert float(p[0]) > 0.25 + 0.05  # the successful chunk gained
    assert float(p[3]) < 0.25  # a failure; the masked chunks that chose 3 did not push it up


def test_kl_is_refused() -> None:
    """WMPO and WoVR use no KL term and no reference model: there is no setting that would ask for one."""
    with pytest.raises(TypeError, match="kl_coef"):
        grpo.GRPOConfig(kl_coef=0.1)  # type: ignore[call-arg]
