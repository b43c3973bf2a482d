"""evaluate_policy runs real episodes through the robot-agent loop on the simulated arm."""

from __future__ import annotations

from pathlib import Path

import pytest
from sft_helpers import SPEC  # the simulated arm's spec: one 64×64 corner4 camera, 4-d state and action

from data_store.episodes import EpisodeStore
from trainer.evaluate import EvalResult, evaluate_policy, wilson_interval


def test_wilson_interval() -> None:
    lo, hi = wilson_interval(0, 50)
    assert lo == 0.0 and 0.05 < hi < 0.09  # 0/50 still leaves ~7% plausible
    lo, hi = wilson_interval(25, 50)
    assert lo == pytest.approx(0.3664, abs=1e-3) and hi == pytest.approx(0.6336, abs=1e-3)
    assert wilson_interval(50, 50)[1] == pytest.approx(1.0) and wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.slow  # ~15 s of real MuJoCo episodes on a busy 2-core machine
def test_the_scripted_expert_succeeds_and_an_untrained_policy_is_recorded(tmp_path: Path) -> None:
    from robot_agent.policies import ScriptedPolicy
    from vla.model import VLAConfig, VLAPolicy
    from vla.norm_stats import NormStats

    expert = evaluate_policy(ScriptedPolicy(), "drawer-close", 1, seed=100_000)
    assert isinstance(expert, EvalResult)
    assert (expert.task, expert.successes, expert.episodes, expert.rate) == ("drawer-close", 1, 1, 1.0)
    assert expert.mean_steps < 100  # stopped at success, before the task's 100 steps

    import torch

    torch.manual_seed(0)
    store = EpisodeStore(tmp_path / "store")
    policy = VLAPolicy(VLAConfig.preset("tiny"), NormStats.from_spec(SPEC), SPEC).eval()
    policy.version = "vla-untrained"
    result = evaluate_policy(policy, "drawer-close", 2, seed=123, store=store, max_steps=12)
    assert result.successes == 0 and result.episodes == 2 and result.mean_steps == 12
    assert result.ci95[0] == 0.0 and result.policy_version == "vla-untrained"
    recorded = store.episodes(policy_version="vla-untrained")
    assert [i.length for i in recorded] == [12, 12]
    assert sorted(i.meta["seed"] for i in recorded) == [123, 124]
    assert all(i.success == "false" and i.status == "complete" for i in recorded)


@pytest.mark.slow  # ~10 s of MuJoCo
def test_scene_outcomes_replays_what_the_robot_agent_loop_does(tmp_path: Path) -> None:
    """The judge's and the benches' batched evaluator against the robot's own loop, at the deployment temperature:
    the same scenes give the same actions, step by step, and so the same outcomes."""
    import numpy as np
    import torch

    from trainer.evaluate import scene_outcomes
    from vla.model import VLAConfig, VLAPolicy
    from vla.norm_stats import NormStats

    torch.manual_seed(1)
    policy = VLAPolicy(VLAConfig.preset("tiny"), NormStats.from_spec(SPEC), SPEC).eval()
    policy.version = "vla-untrained"
    loop, batched = EpisodeStore(tmp_path / "loop"), EpisodeStore(tmp_path / "batched")
    seeds = [100_000, 100_001, 100_002]
    result = evaluate_policy(policy, "drawer-close", 3, seed=seeds[0], store=loop, max_steps=16)
    outcomes = scene_outcomes(policy, "drawer-close", seeds, 0.0, max_steps=16, store=batched, lockstep=2)
    assert outcomes.dtype == bool and outcomes.shape == (3,) and int(outcomes.sum()) == result.successes
    by_seed = {}
    for store in (loop, batched):
        for info in store.episodes():
            by_seed.setdefault(info.meta["seed"], []).append(store.open(info.episode_id).actions())
    assert sorted(by_seed) == seeds
    for a, b in by_seed.values():
        np.testing.assert_allclose(a, b, atol=1e-6)
