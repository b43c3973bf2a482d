"""The shipped stage table (``trainer.service.stages``: the steps of ``trainer/cycle.py`` with a recipe) on Redis
with real workers: the real world model (SIGKILLed mid-training and resumed by a second worker), the real reward
model, imagined GRPO on a real tiny VLA policy, the judge, and the register stage. Tiny configs; still the slowest
tests here."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
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


def check_outcome(settings, status) -> None:  # type: ignore[no-untyped-def]
    """The register stage did what the judge decided: a promoted candidate is registered with the judge's figures
    and the ``candidate`` alias; otherwise nothing is registered and the run says why."""
    evaluated = status["results"]["evaluate"]["metrics"]
    assert {"imagined_success", "parent_imagined_success", "imagined_gain", "promoted"} <= set(evaluated)
    rows = registered(settings)
    if evaluated["promoted"]:
        assert status["outcome"] == "promoted" and len(rows) == 1
        version, tag, metrics = rows[0]
        assert version == status["candidate"]["version"] and tag == training_run_tag(status["key"])
        assert {k: metrics[k] for k in evaluated} == pytest.approx(evaluated)  # plus GRPO's, from its manifest
    else:
        assert status["outcome"] == "no improvement" and rows == [] and status["outcome_reason"]


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_real_stages_survive_a_kill(redis_settings, workers, tmp_path) -> None:
    need(importlib.util.find_spec("trainer.evaluate") is not None, "trainer/evaluate.py (the evaluation stage)")
    settings = redis_settings.model_copy(update={"stage_table": "trainer.service.stages:STAGES"})
    record_episodes(settings.root / "episodes", 4, steps=10, size=64)
    policy = vla_policy_artifact(tmp_path / "policy")
    config = settings.root / "cycle.json"
    cycle = {
        "policy": str(policy),
        "task": "drawer-close",
        "recipe": "quick",
        # enough steps that the first worker is still training when it is killed at step 3 (under load too)
        "overrides": {"world_model_steps": 40, "horizon": 8},
        "options": {"world_model": {"checkpoint_every": 2, "log_every": 1}},
    }
    config.write_text(json.dumps(cycle))
    first = workers(settings, "first")
    run_id = submit(service_env(settings), "--config", str(config))
    wait_for(lambda: (stage(settings, run_id, "world_model").get("step") or 0) >= 3, 150, "world model at step 3")
    first.kill()
    workers(settings, "second")
    status = finished(settings, run_id, 400)
    assert status["state"] == "succeeded", status
    wm = stage(settings, run_id, "world_model")
    assert wm["attempts"] == 2 and wm["resumed"] is True
    check_outcome(settings, status)


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~5 min on an idle 2-core machine; a loaded one takes three times as long
def test_the_nightly_cycle_makes_real_updates(redis_settings, workers, tmp_path) -> None:
    """Real episodes of the simulated arm (the scripted expert at several noise levels: half succeed), a tiny VLA
    trained on them, the nightly trigger on a real worker: imagination must see successes and GRPO must move the
    policy's weights."""
    from data_store.episodes import EpisodeStore
    from trainer.sft import SFTConfig, train_sft
    from trainer.world_model.recording import NoisyExpertPlan, record_noisy_expert

    store = EpisodeStore(redis_settings.root / "episodes")
    plan = NoisyExpertPlan(noise_levels=(0.0, 0.5, 1.0, 2.0), min_steps=60, max_steps=100)
    record_noisy_expert(store, "drawer-close", 16, plan, seed=0)
    real = np.mean([i.success == "true" for i in store.episodes(status="complete")])
    assert 0.2 <= real <= 0.8, real
    policy = tmp_path / "policy"
    train_sft(store, policy, SFTConfig(preset="tiny", steps=100, tasks=("drawer-close",)))
    cycle = {
        "policy": str(policy),
        "task": "drawer-close",
        "recipe": "quick",
        "overrides": {"world_model_steps": 600, "reward_model_steps": 200, "horizon": None, "iterations": 2},
    }
    config = redis_settings.root / "nightly.json"
    config.write_text(json.dumps(cycle))
    settings = redis_settings.model_copy(
        update={"stage_table": "trainer.service.stages:STAGES", "cycle_config": str(config), "min_new_episodes": 16}
    )
    workers(settings, "nightly")
    # what `flywheel.nightly` runs when beat fires, in a process of its own with the service's environment
    trigger = (
        "from trainer.service.schedule import maybe_start_cycle as m; from trainer.service.settings import "
        "load_settings as s; print('RESULT', m(s()) or 'none')"
    )
    out = subprocess.run([sys.executable, "-c", trigger], env=service_env(settings), capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.split("RESULT")[-1].strip()
    assert run_id != "none", out.stdout
    status = finished(settings, run_id, 1500)
    assert status["state"] == "succeeded", status
    assert status["trigger"] == "nightly"
    grpo = status["results"]["grpo"]["metrics"]
    assert grpo["updates"] >= 1 and grpo["moved"] == 1.0, grpo  # at least one update changed the weights
    assert grpo["imagined_success"] > 0.0, grpo  # imagination sees successes
    assert grpo["draws"] >= grpo["updates"], grpo  # its progress counted each imagined batch inside the iterations
    check_outcome(settings, status)
