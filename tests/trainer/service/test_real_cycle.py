"""The shipped stage table end to end on Redis with a real worker: the real world model (SIGKILLed mid-training
and resumed by a second worker), the real reward model, imagined GRPO on a real tiny VLA policy, evaluation,
and the candidate in the real registry with its metrics. Tiny configs; still the slowest test here."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from service_helpers import finished, record_episodes, registered, service_env, stage, submit, tiny_spec, wait_for

from tests.conftest import need
from trainer.service.stages import training_run_tag


def vla_policy_artifact(directory: Path) -> Path:
    import torch

    from vla.artifact import save_artifact
    from vla.model import VLAConfig, VLAPolicy
    from vla.norm_stats import NormStats

    spec, rng = tiny_spec(4, 64), np.random.default_rng(0)
    torch.manual_seed(0)
    stats = NormStats.fit(rng.normal(size=(100, 4)), rng.uniform(-1, 1, size=(100, 4)), spec)
    save_artifact(VLAPolicy(VLAConfig.preset("tiny"), stats, spec).eval(), directory)
    return directory


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_real_stages_survive_a_kill_and_register_one_candidate(redis_settings, workers, tmp_path) -> None:
    need(importlib.util.find_spec("trainer.evaluate") is not None, "trainer/evaluate.py (the evaluation stage)")
    settings = redis_settings.model_copy(update={"stage_table": "trainer.service.stages:STAGES"})
    record_episodes(settings.root / "episodes", 4, steps=10, size=64)
    policy = vla_policy_artifact(tmp_path / "policy")
    config = settings.root / "cycle.json"
    options = {
        # enough steps that the first worker is still training when it is killed at step 3 (under load too)
        "world_model": {"steps": 40, "batch_size": 2, "checkpoint_every": 2, "log_every": 1, "warmup_steps": 1},
        "reward_model": {"steps": 4, "batch_size": 8},
        "grpo": {"iterations": 1, "grpo_preset": "tiny", "horizon": 8},
        "evaluate": {"group_size": 1, "max_starts": 2, "horizon": 8},
    }
    config.write_text(json.dumps({"policy": str(policy), "task": "drawer-close", "options": options}))
    first = workers(settings, "first")
    run_id = submit(service_env(settings), "--config", str(config))
    wait_for(lambda: (stage(settings, run_id, "world_model").get("step") or 0) >= 3, 150, "world model at step 3")
    first.kill()
    workers(settings, "second")
    status = finished(settings, run_id, 400)
    assert status["state"] == "succeeded", status
    wm = stage(settings, run_id, "world_model")
    assert wm["attempts"] == 2 and wm["resumed"] is True
    rows = registered(settings)
    assert len(rows) == 1
    version, tag, metrics = rows[0]
    assert version == status["candidate"]["version"] and tag == training_run_tag(status["key"])
    assert set(metrics) >= {"imagined_success", "parent_imagined_success", "imagined_gain"}
    evaluated = status["results"]["evaluate"]["metrics"]
    assert {k: metrics[k] for k in evaluated} == pytest.approx(evaluated)  # plus GRPO's, from its manifest
