"""Small builders shared by the vla tests: a robot spec like the simulated arm's, observations, tiny policies."""

from __future__ import annotations

import numpy as np

from data_store.schema import Observation, RobotSpec
from vla.model import VLAConfig, VLAPolicy
from vla.norm_stats import NormStats

SPEC = RobotSpec(
    action_dim=4,
    state_dim=4,
    action_low=(-1.0,) * 4,
    action_high=(1.0,) * 4,
    cameras={"corner": (64, 64)},
)


def observations(n: int, seed: int = 0, instruction: str = "close the drawer") -> list[Observation]:
    return [Observation.fake(SPEC, instruction=instruction, seed=seed + i) for i in range(n)]


def tiny_policy(seed: int = 0, **overrides: object) -> VLAPolicy:
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    stats = NormStats.fit(rng.normal(size=(100, 4)), rng.uniform(-1, 1, size=(100, 4)), SPEC)
    return VLAPolicy(VLAConfig.preset("tiny", **overrides), stats, SPEC).eval()  # type: ignore[arg-type]
