"""Imagined rollouts (trainer/imagine.py) with the project's real tiny models: the VLA policy, the pixel world
model and the frame reward model (freshly initialised: shapes, masks and determinism do not need training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_store.schema import RobotSpec
from trainer import grpo
from trainer.imagine import ImagineConfig, ProprioModel, StartState, imagine_rollouts

SPEC = RobotSpec(4, 4, (-1.0,) * 4, (1.0,) * 4, cameras={"corner4": (64, 64)})


@pytest.fixture(scope="module")
def models() -> tuple[object, object, object]:
    from trainer.reward_model import PRESETS as RM_PRESETS
    from trainer.reward_model import FrameRewardModel, SuccessClassifier
    from trainer.world_model import PRESETS as WM_PRESETS
    from trainer.world_model import PixelWorldModel
    from trainer.world_model.network import ChunkDenoiser
    from vla.model import VLAConfig, VLAPolicy
    from vla.norm_stats import NormStats

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    stats = NormStats.fit(rng.normal(size=(64, 4)).astype(np.float32), rng.uniform(-1, 1, (64, 4)), SPEC)
    policy = VLAPolicy(VLAConfig.preset("tiny"), stats, SPEC).eval()
    world_model = PixelWorldModel(ChunkDenoiser(WM_PRESETS["tiny"]))
    rm_cfg = RM_PRESETS["tiny"]
    reward_model = FrameRewardModel(SuccessClassifier(rm_cfg), rm_cfg)
    return policy, world_model, reward_model


def _start(seed: int, steps_left: int, c: int = 3) -> StartState:
    rng = np.random.default_rng(seed)
    return StartState(
        context_frames=rng.integers(0, 256, size=(c, 64, 64, 3), dtype=np.uint8),
        context_actions=rng.uniform(-1, 1, (c - 1, 4)).astype(np.float32),
        state=rng.uniform(-0.5, 0.5, 4).astype(np.float32),
        instruction="close the drawer",
        steps_left=steps_left,
    )


PROPRIO = ProprioModel(
    np.eye(4, dtype=np.float32) * 0.01, np.zeros(4, np.float32), -np.ones(4, np.float32), np.ones(4, np.float32)
)


def test_shapes_masks_and_groups(models: tuple[object, object, object]) -> None:
    policy, world_model, reward_model = models
    reward_model.threshold = 2.0  # type: ignore[attr-defined]  # nothing succeeds: masks follow the step budget only
    cfg = ImagineConfig(group_size=3)
    starts = [_start(0, steps_left=32), _start(1, steps_left=12)]  # the second: a KIR start 4 steps from the end
    batch = imagine_rollouts(policy, world_model, reward_model, starts, cfg, "corner4", seed=0, proprio_model=PROPRIO)
    r = batch.rollouts
    n, c = 6, 4  # B·G trajectories; 32 steps / K=8 chunks
    assert r.token_ids.shape == (n, c, 8, 4) and r.token_ids.dtype == torch.long
    assert r.old_logprob.shape == (n, c) and r.mask.shape == (n, c)
    assert batch.frames.shape == (n, c * 8, 64, 64, 3) and batch.frames.dtype == np.uint8
    assert batch.actions is not None and batch.actions.shape == (n, c * 8, 4)  # what the world model was given
    assert len(r.observations) == n and all(len(o) == c for o in r.observations)
    # group members are consecutive and share their start
    assert [s.steps_left for s in batch.starts] == [32, 32, 32, 12, 12, 12]
    # 12 steps left -> 2 chunks in the loss; 32 -> 4
    assert r.mask.sum(dim=1).tolist() == [4, 4, 4, 2, 2, 2]
    assert not r.success.any() and (batch.finish_step == -1).all()
    # old log-probs are the policy's own log-probs of the sampled tokens, at the sampling temperature
    obs = [r.observations[i][1] for i in range(n)]
    again = policy.log_prob(obs, r.token_ids[:, 1], temperature=cfg.temperature)  # type: ignore[attr-defined]
    assert torch.allclose(again.detach(), r.old_logprob[:, 1], atol=1e-3)
    # the first observation is the last context frame; later ones are imagined frames
    assert np.array_equal(r.observations[0][0].images["corner4"], starts[0].context_frames[-1])
    assert np.array_equal(r.observations[0][1].images["corner4"], batch.frames[0, 7])
    # imagined proprio moves with the actions (learned model), it is not frozen at the start
    assert not np.allclose(r.observations[0][2].state, starts[0].state)


def test_deploy_members_act_as_the_robot_and_keep_the_sampling_log_prob(models: tuple[object, object, object]) -> None:
    """The first member of each group takes the argmax (what the robot runs); the rest sample; every member's
    old log-prob is at the sampling temperature, so one GRPO ratio fits the whole group."""
    policy, world_model, reward_model = models
    reward_model.threshold = 2.0  # type: ignore[attr-defined]
    cfg = ImagineConfig(group_size=3, deploy_members=1, deploy_temperature=0.0)
    starts = [_start(0, steps_left=16), _start(1, steps_left=16)]
    batch = imagine_rollouts(policy, world_model, reward_model, starts, cfg, "corner4", seed=0, proprio_model=PROPRIO)
    r = batch.rollouts
    for row in range(6):
        obs = [r.observations[row][1]]
        greedy = policy.sample(obs, 0.0)[1]  # type: ignore[attr-defined]
        is_greedy = torch.equal(r.token_ids[row, 1:2].reshape(greedy.shape), greedy)
        assert is_greedy == (row % 3 == 0), row
        again = policy.log_prob(obs, r.token_ids[row : row + 1, 1], temperature=cfg.temperature)  # type: ignore[attr-defined]
        assert torch.allclose(again.detach(), r.old_logprob[row : row + 1, 1], atol=1e-3)


def test_post_success_chunks_are_masked(models: tuple[object, object, object]) -> None:
    policy, world_model, reward_model = models
    cfg = ImagineConfig(group_size=4)
    starts = [_start(2, steps_left=40)]
    reward_model.threshold = 2.0  # type: ignore[attr-defined]
    probe = imagine_rollouts(policy, world_model, reward_model, starts, cfg, "corner4", seed=1, proprio_model=PROPRIO)
    assert probe.rollouts.mask.sum(dim=1).tolist() == [5, 5, 5, 5]  # 40 steps: 5 chunks, no success
    scores = reward_model.score(probe.frames)  # type: ignore[attr-defined]  # float [4, 40]
    first_chunk_best = float(scores[:, :8].max())
    # a threshold every trajectory reaches within its first chunk: each ends there, the rest is masked
    reward_model.threshold = first_chunk_best  # type: ignore[attr-defined]
    batch = imagine_rollouts(policy, world_model, reward_model, starts, cfg, "corner4", seed=1, proprio_model=PROPRIO)
    r = batch.rollouts
    hit = (scores[:, :8] >= first_chunk_best).any(axis=1)
    assert r.success.bool().tolist() == hit.tolist() and hit.any()
    for i in range(4):
        if hit[i]:
            # the chunk that succeeded is the last in the loss (the loop stops once every trajectory is done)
            assert r.mask[i].tolist() == [True] + [False] * (r.mask.shape[1] - 1)
            assert batch.finish_step[i] == int(np.argmax(scores[i, :8] >= first_chunk_best))
        else:
            assert batch.finish_step[i] == -1


def test_deterministic_under_a_seed(models: tuple[object, object, object]) -> None:
    policy, world_model, reward_model = models
    cfg = ImagineConfig(group_size=2)
    starts = [_start(3, steps_left=16)]
    a = imagine_rollouts(policy, world_model, reward_model, starts, cfg, "corner4", seed=7, proprio_model=PROPRIO)
    b = imagine_rollouts(policy, world_model, reward_model, starts, cfg, "corner4", seed=7, proprio_model=PROPRIO)
    c = imagine_rollouts(policy, world_model, reward_model, starts, cfg, "corner4", seed=8, proprio_model=PROPRIO)
    assert torch.equal(a.rollouts.token_ids, b.rollouts.token_ids)
    assert np.array_equal(a.frames, b.frames)
    assert not torch.equal(a.rollouts.token_ids, c.rollouts.token_ids)


def test_one_grpo_update_on_imagined_rollouts(models: tuple[object, object, object]) -> None:
    policy, world_model, reward_model = models
    cfg = ImagineConfig(group_size=4)
    batch = imagine_rollouts(
        policy, world_model, reward_model, [_start(4, 16)], cfg, "corner4", seed=0, proprio_model=PROPRIO
    )
    r = batch.rollouts
    r.success = torch.tensor([1.0, 0.0, 0.0, 1.0])  # outcome labels for the update (the reward model's are random)
    gcfg = grpo.GRPOConfig(group_size=4, lr=1e-3)
    before = [p.detach().clone() for p in policy.parameters()]  # type: ignore[attr-defined]
    stats = grpo.update(policy, grpo.make_optimizer(policy, gcfg), r, gcfg)
    assert stats["valid_chunks"] == float(r.mask.sum()) and np.isfinite(stats["loss"])
    assert stats["clip_frac"] == 0.0  # first step on fresh samples: ratio 1, nothing clipped
    changed = [not torch.equal(a, p.detach()) for a, p in zip(before, policy.parameters(), strict=True)]  # type: ignore[attr-defined]
    assert any(changed)


def _lagged_arm(rng: np.random.Generator, steps: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """A hand that follows a commanded target with lag and a gripper reading that saturates (as in Meta-World)."""
    actions = np.clip(rng.normal(0.3, 0.6, (steps, 4)), -1, 1).astype(np.float32)
    target, hand, grip = np.zeros(3), np.zeros(3), 1.0
    states = []
    for a in actions:
        states.append([*hand, grip])
        target = np.clip(target + 0.01 * a[:3], -0.3, 0.3)
        hand = hand + 0.5 * (target - hand)
        grip = float(np.clip(grip - 0.2 * a[3], 0.3, 1.0))
    return np.asarray(states, np.float32), actions


def test_proprio_net_follows_a_lagged_saturating_arm_better_than_the_linear_model() -> None:
    from trainer.imagine import ProprioNet

    rng = np.random.default_rng(0)
    train = [_lagged_arm(rng) for _ in range(40)]
    states, actions = _lagged_arm(rng)
    errors = {}
    for name, model in (("linear", ProprioModel.fit(train)), ("net", ProprioNet.fit(train, steps=800))):
        s, carry = states[:1], None
        for t in range(0, 32, 8):
            s, carry = model.roll(s, actions[None, t : t + 8], carry)
        errors[name] = float(np.abs(s[0] - states[32]).max())
    assert errors["net"] < 0.5 * errors["linear"], errors


def test_a_policy_and_world_model_that_do_not_fit_together_are_refused(models: tuple[object, object, object]) -> None:
    """The chunk sizes must agree and the starts must be at the world model's frame size: said in one sentence."""
    from dataclasses import replace

    from trainer.world_model import PRESETS as WM_PRESETS
    from trainer.world_model import PixelWorldModel
    from trainer.world_model.network import ChunkDenoiser

    policy, world_model, reward_model = models
    cfg = ImagineConfig(group_size=2)
    other_k = PixelWorldModel(ChunkDenoiser(replace(WM_PRESETS["tiny"], chunk_size=4)))
    with pytest.raises(ValueError, match="chunks of 8 actions, the world model predicts 4 frames"):
        imagine_rollouts(policy, other_k, reward_model, [_start(0, 16)], cfg, "corner4", proprio_model=PROPRIO)
    small = _start(0, 16)
    small = StartState(small.context_frames[:, :32, :32], small.context_actions, small.state, small.instruction, 16)
    with pytest.raises(ValueError, match="start frames are 32x32, the world model's 64x64"):
        imagine_rollouts(policy, world_model, reward_model, [small], cfg, "corner4", proprio_model=PROPRIO)
