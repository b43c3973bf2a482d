"""VLAPolicy against the Policy protocol: shapes, log-probs, temperature, determinism, presets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vla_helpers import SPEC, observations, tiny_policy

from data_store.schema import ActionChunk, SchemaError
from vla.model import PRESETS, VLAConfig, token_entropy
from vla.protocol import Policy, TrainablePolicy


def test_implements_the_protocol_with_the_documented_shapes() -> None:
    policy = tiny_policy()
    assert isinstance(policy, Policy) and isinstance(policy, TrainablePolicy)
    batch = observations(5)
    logits = policy.logits(batch)
    assert logits.shape == (5, 8, 4, 256)
    actions, token_ids, logprob = policy.sample(batch, temperature=1.0)
    assert actions.shape == (5, 8, 4) and actions.dtype == np.float32
    assert token_ids.shape == (5, 8, 4) and token_ids.dtype == torch.int64
    assert logprob.shape == (5,)
    assert np.all(actions >= -1.0) and np.all(actions <= 1.0)
    np.testing.assert_allclose(actions, policy.norm_stats.decode_actions(token_ids.numpy()))


def test_log_prob_of_sampled_tokens_equals_what_sample_returned() -> None:
    policy = tiny_policy()
    batch = observations(6)
    for temperature in (1.0, 1.6):
        _, token_ids, logprob = policy.sample(batch, temperature)
        again = policy.log_prob(batch, token_ids, temperature)
        torch.testing.assert_close(again, logprob, atol=1e-5, rtol=1e-6)
        # a different set of tokens has a different log-prob: the check above can fail
        other = (token_ids + 1) % 256
        assert not torch.allclose(policy.log_prob(batch, other, temperature), logprob, atol=1e-3)


def test_log_prob_is_differentiable_and_sums_token_log_probs() -> None:
    policy = tiny_policy().train()
    batch = observations(3)
    _, token_ids, _ = policy.sample(batch, 1.0)
    lp = policy.log_prob(batch, token_ids, 1.0)
    lp.sum().backward()
    assert policy.action_head.weight.grad is not None and policy.action_head.weight.grad.abs().sum() > 0
    assert policy.vision_proj.weight.grad is not None and policy.vision_proj.weight.grad.abs().sum() > 0
    with torch.no_grad():
        per_token = torch.log_softmax(policy.logits(batch), -1).gather(-1, token_ids.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(lp.detach(), per_token.sum(dim=(1, 2)), atol=1e-5, rtol=1e-6)


def test_higher_temperature_gives_higher_entropy() -> None:
    policy = tiny_policy()
    batch = observations(4)
    with torch.no_grad():
        logits = policy.logits(batch)
    entropies = [float(token_entropy(logits, t).mean()) for t in (0.5, 1.0, 1.6, 3.0)]
    assert entropies == sorted(entropies) and entropies[-1] > entropies[0] + 0.1
    # and the samples themselves spread more: distinct tokens per position across 32 draws
    g = torch.Generator().manual_seed(0)
    obs = observations(1) * 32
    spread = [len(torch.unique(policy.sample(obs, t, generator=g)[1][:, 0, 0])) for t in (0.3, 3.0)]
    assert spread[1] > spread[0]


def test_temperature_zero_is_the_deterministic_median_bin() -> None:
    policy = tiny_policy()
    batch = observations(3)
    a1, t1, lp = policy.sample(batch, 0.0)
    a2, _, _ = policy.sample(batch, 0.0)
    np.testing.assert_array_equal(a1, a2)
    cdf = torch.softmax(policy.logits(batch), -1).cumsum(-1)
    below = torch.gather(cdf, -1, (t1 - 1).clamp(min=0).unsqueeze(-1)).squeeze(-1)
    at = torch.gather(cdf, -1, t1.unsqueeze(-1)).squeeze(-1)
    assert bool((at >= 0.5).all()) and bool(((below < 0.5) | (t1 == 0)).all())  # the first bin reaching 1/2
    torch.testing.assert_close(lp, policy.log_prob(batch, t1, 1.0).detach())


def test_the_median_is_robust_where_the_argmax_jumps() -> None:
    from vla.model import median_tokens

    # one flat action token over 256 ordered bins with a slight bump at bin 40 and most mass around bin 128: the
    # argmax sits on the bump, the median with the mass; moving a little mass moves the argmax far, the median not
    bins = torch.arange(256, dtype=torch.float32)
    logits = -((bins - 128) ** 2) / (2 * 40.0**2)
    bumped = logits.clone()
    bumped[40] += 2.6
    assert int(bumped.argmax()) == 40 and int(logits.argmax()) == 128
    assert abs(int(median_tokens(bumped)) - int(median_tokens(logits))) <= 2
    peaked = torch.full((256,), -10.0)
    peaked[7] = 10.0
    assert int(median_tokens(peaked)) == 7 == int(peaked.argmax())  # a confident token decodes as its mode


def test_sampling_with_a_generator_is_reproducible() -> None:
    policy = tiny_policy()
    batch = observations(2)
    t1 = policy.sample(batch, 1.6, generator=torch.Generator().manual_seed(7))[1]
    t2 = policy.sample(batch, 1.6, generator=torch.Generator().manual_seed(7))[1]
    t3 = policy.sample(batch, 1.6, generator=torch.Generator().manual_seed(8))[1]
    torch.testing.assert_close(t1, t2)
    assert not torch.equal(t1, t3)


def test_act_returns_a_chunk_with_version_tokens_and_logprob() -> None:
    policy = tiny_policy()
    policy.version = "vla-test"
    obs = observations(1)[0]
    chunk = policy.act(obs)
    assert isinstance(chunk, ActionChunk)
    assert chunk.actions.shape == (8, 4) and chunk.token_ids is not None and chunk.token_ids.shape == (8, 4)
    assert chunk.policy_version == "vla-test" and chunk.logprob is not None and chunk.logprob < 0
    policy.reset()


def test_the_image_and_the_instruction_both_change_the_output() -> None:
    policy = tiny_policy()
    obs = observations(2)
    same_image = [
        obs[0],
        type(obs[0])(images=obs[0].images, state=obs[0].state, instruction="push the button", timestamp=0.0),
    ]
    logits = policy.logits([obs[0], obs[1], *same_image[1:]])
    assert not torch.allclose(logits[0], logits[1])  # other image and state
    assert not torch.allclose(logits[0], logits[2])  # other instruction


def test_wrong_camera_or_state_size_is_a_schema_error() -> None:
    policy = tiny_policy(camera="wrist")
    with pytest.raises(SchemaError, match="wrist"):
        policy.act(observations(1)[0])
    policy = tiny_policy()
    obs = observations(1)[0]
    obs.state = np.zeros(7, dtype=np.float32)
    with pytest.raises(SchemaError, match="state"):
        policy.act(obs)


def test_presets_and_config_json() -> None:
    assert set(PRESETS) == {"tiny", "small", "base"}
    cfg = VLAConfig.preset("small", action_dim=7)
    assert cfg.action_dim == 7 and cfg.chunk_size == 8 and cfg.n_bins == 256
    assert VLAConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="unknown preset"):
        VLAConfig.preset("huge")
    assert SPEC.action_dim == 4


def test_pretrained_vision_loads_from_a_local_hf_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(3)
    vit = ViTModel(
        ViTConfig(
            image_size=32,
            patch_size=8,
            hidden_size=24,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=48,
        ),
        add_pooling_layer=False,
    )
    vit.save_pretrained(tmp_path / "vit")
    cfg = VLAConfig.preset("tiny").with_pretrained_vision(tmp_path / "vit")
    assert (cfg.image_size, cfg.patch_size, cfg.vision_hidden) == (32, 8, 24)
    policy = tiny_policy(
        **{
            k: getattr(cfg, k)
            for k in (
                "image_size",
                "patch_size",
                "vision_hidden",
                "vision_layers",
                "vision_heads",
                "vision_mlp",
                "vision_pretrained",
            )
        }
    )
    for name, tensor in vit.state_dict().items():
        torch.testing.assert_close(policy.vision.state_dict()[name], tensor)
    assert policy.logits(observations(1)).shape == (1, 8, 4, 256)  # 64x64 frames resized to 32x32
