"""The LeRobot adapter: runs where lerobot is installed; elsewhere it fails with the exact install line."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from vla_helpers import SPEC

from data_store.schema import Observation
from tests.conftest import need

HAVE_LEROBOT = importlib.util.find_spec("lerobot") is not None


def test_missing_lerobot_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from vla.adapters import MissingDependency
    from vla.adapters.lerobot import LeRobotPolicy

    monkeypatch.setitem(sys.modules, "lerobot", None)  # importing lerobot now fails, as on this machine
    with pytest.raises(MissingDependency) as err:
        LeRobotPolicy.from_pretrained("/nonexistent")
    assert "pip install 'vla-flywheel[lerobot]'" in str(err.value)
    assert err.value.package == "lerobot" and isinstance(err.value, ImportError)


def test_lerobot_act_policy_through_the_protocol(tmp_path: Path) -> None:
    need(HAVE_LEROBOT, "lerobot: pip install 'vla-flywheel[lerobot]' (Python >= 3.12)", optional_in_ci=True)
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    from vla.adapters.lerobot import LeRobotPolicy
    from vla.protocol import Policy

    camera = next(iter(SPEC.cameras))
    config = ACTConfig(
        input_features={
            "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(4,)),
            f"observation.images.{camera}": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 64, 64)),
        },
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(4,))},
        chunk_size=8,
        n_action_steps=8,
        dim_model=32,
        n_heads=2,
        dim_feedforward=64,
        n_encoder_layers=1,
        n_decoder_layers=1,
        use_vae=False,
        pretrained_backbone_weights=None,
        device="cpu",
    )
    torch.manual_seed(0)
    ACTPolicy(config).save_pretrained(tmp_path / "act")
    pre, post = make_pre_post_processors(policy_cfg=config, dataset_stats=None)
    pre.save_pretrained(tmp_path / "act")
    post.save_pretrained(tmp_path / "act")
    policy = LeRobotPolicy.from_pretrained(tmp_path / "act")
    assert isinstance(policy, Policy)
    chunk = policy.act(Observation.fake(SPEC, seed=1))
    assert chunk.actions.shape == (8, 4) and np.isfinite(chunk.actions).all()
    policy.reset()
