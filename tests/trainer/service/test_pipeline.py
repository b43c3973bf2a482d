"""The cycle without a broker (``run_cycle_inline``): stages, idempotency, bad input, the registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cycle_stages import executions
from service_helpers import make_policy_artifact, make_settings, record_episodes, registered

from data_store.registry import FLEET, Registry, policies
from trainer.service.execute import run_stage, snapshot_step
from trainer.service.pipeline import run_cycle_inline, start_run
from trainer.service.progress import run_status
from trainer.service.stage import CycleConfig, StageError, StageUnavailable
from trainer.service.stages import require, training_run_tag


def test_a_cycle_registers_one_candidate_with_its_metrics(embedded, episodes, policy_dir) -> None:
    status = run_cycle_inline(CycleConfig(policy=str(policy_dir)), embedded)
    assert status["state"] == "succeeded", status
    assert [p["state"] for p in status["progress"]] == ["done"] * 6
    candidate = status["candidate"]
    rows = registered(embedded)
    assert [r[0] for r in rows] == [candidate["version"]]
    version, run_tag, metrics = rows[0]
    assert run_tag == training_run_tag(status["key"])
    assert set(metrics) >= {"dynamics_mse", "success_accuracy"}
    assert metrics == pytest.approx(status["results"]["evaluate"]["metrics"])
    parent = json.loads((policy_dir / "manifest.json").read_text())["version"]
    reg = Registry(embedded.registry_db, embedded.registry_artifacts_dir)
    with reg.session() as s:
        alias = policies.get_alias(s, FLEET, "candidate")
        assert alias is not None and alias.version == version
        assert policies.get_policy(s, version).parent == parent
    reg.close()
    assert status["snapshot"]["episodes"] == [[e, 6] for e in sorted(episodes)]


def test_a_candidate_the_evaluation_refuses_is_not_registered_and_moves_no_alias(
    embedded, episodes, policy_dir
) -> None:
    config = CycleConfig(policy=str(policy_dir), options={"evaluate": {"promote_if_mse_below": 0.0}})
    status = run_cycle_inline(config, embedded)
    assert status["state"] == "succeeded", status  # the cycle ran to its end: "no improvement" is an outcome
    assert status["outcome"] == "no improvement" and "dynamics mse" in status["outcome_reason"]
    assert status.get("candidate") is None and registered(embedded) == []
    reg = Registry(embedded.registry_db, embedded.registry_artifacts_dir)
    with reg.session() as s:
        assert policies.get_alias(s, FLEET, "candidate") is None
    reg.close()
    promoted = run_cycle_inline(CycleConfig(policy=str(policy_dir)), embedded)
    assert promoted["outcome"] == "promoted" and promoted["candidate"]["version"]


def test_the_same_snapshot_and_config_reuse_the_work_and_register_nothing_new(embedded, episodes, policy_dir) -> None:
    config = CycleConfig(policy=str(policy_dir))
    first = run_cycle_inline(config, embedded)
    second = run_cycle_inline(config, embedded)
    assert second["state"] == "succeeded" and second["run_id"] != first["run_id"]
    assert second["key"] == first["key"]
    assert all(p.get("reused") for p in second["progress"][1:])
    assert second["candidate"]["version"] == first["candidate"]["version"]
    assert len(registered(embedded)) == 1
    ran = [e["stage"] for e in executions(embedded.work_dir / first["key"]) if e["event"] == "start"]
    assert sorted(ran) == sorted(["world_model", "reward_model", "grpo", "evaluate"])  # each once


def test_a_new_episode_or_a_new_config_is_new_work(embedded, episodes, policy_dir, tmp_path) -> None:
    first = run_cycle_inline(CycleConfig(policy=str(policy_dir)), embedded)
    other_config = run_cycle_inline(CycleConfig(policy=str(policy_dir), seed=1), embedded)
    record_episodes(embedded.root / "episodes", 1, seed=7)
    more_data = run_cycle_inline(CycleConfig(policy=str(policy_dir)), embedded)
    keys = {first["key"], other_config["key"], more_data["key"]}
    assert len(keys) == 3
    assert len(registered(embedded)) == 3


def test_a_redelivered_stage_does_not_run_again(embedded, episodes, policy_dir) -> None:
    run_id = start_run(embedded, CycleConfig(policy=str(policy_dir)))
    snapshot_step(embedded, run_id)
    assert snapshot_step(embedded, run_id)["snapshot"] is not None  # the redelivered snapshot is the same
    first = run_stage(embedded, run_id, "world_model")
    again = run_stage(embedded, run_id, "world_model")
    assert again == first
    key = run_status(run_id, embedded)["key"]
    assert [e["event"] for e in executions(embedded.work_dir / key)] == ["start", "end"]


def test_a_stage_before_its_inputs_fails_with_the_reason(embedded, episodes, policy_dir) -> None:
    run_id = start_run(embedded, CycleConfig(policy=str(policy_dir)))
    snapshot_step(embedded, run_id)
    with pytest.raises(StageError, match="'world_model', has not finished"):
        run_stage(embedded, run_id, "grpo")
    assert "world_model" in run_status(run_id, embedded)["reason"]


def test_an_empty_dataset_fails_fast_and_registers_nothing(embedded, policy_dir) -> None:
    status = run_cycle_inline(CycleConfig(policy=str(policy_dir)), embedded)
    assert status["state"] == "failed"
    assert status["reason"].startswith("empty dataset")
    assert status["progress"][0]["state"] == "failed"
    assert all(p["state"] == "pending" for p in status["progress"][1:])
    assert registered(embedded) == []


def test_episodes_of_another_action_space_fail_fast(embedded, episodes, tmp_path) -> None:
    seven_dof = make_policy_artifact(tmp_path / "policy7", action_dim=7)
    status = run_cycle_inline(CycleConfig(policy=str(seven_dof)), embedded)
    assert status["state"] == "failed"
    assert "action space mismatch" in status["reason"] and "action_dim 4" in status["reason"]
    assert registered(embedded) == []


def test_a_missing_or_altered_policy_artifact_fails_fast(embedded, episodes, policy_dir, tmp_path) -> None:
    missing = run_cycle_inline(CycleConfig(policy=str(tmp_path / "nowhere")), embedded)
    assert missing["state"] == "failed" and "missing policy artifact" in missing["reason"]
    (policy_dir / "norm_stats.json").write_text('{"altered": true}')
    altered = run_cycle_inline(CycleConfig(policy=str(policy_dir)), embedded)
    assert altered["state"] == "failed" and "norm_stats.json" in altered["reason"]
    assert registered(embedded) == []


def test_an_artifact_gone_between_stages_fails_and_nothing_is_registered(embedded, episodes, policy_dir) -> None:
    run_id = start_run(embedded, CycleConfig(policy=str(policy_dir)))
    snapshot_step(embedded, run_id)
    for stage in ("world_model", "reward_model", "grpo"):
        run_stage(embedded, run_id, stage)
    key = run_status(run_id, embedded)["key"]
    (embedded.work_dir / key / "world_model" / "out" / "dynamics.safetensors").unlink()
    with pytest.raises(StageError, match="missing artifact"):
        run_stage(embedded, run_id, "evaluate")
    with pytest.raises(StageError, match="failed earlier"):
        run_stage(embedded, run_id, "register")
    status = run_status(run_id, embedded)
    assert status["state"] == "failed" and status["failed_stage"] == "evaluate"
    assert registered(embedded) == []


def test_a_missing_trainer_fails_the_run_with_what_is_missing(tmp_path: Path, episodes, policy_dir) -> None:
    settings = make_settings(tmp_path, stage_table="cycle_stages:MISSING_GRPO")
    status = run_cycle_inline(CycleConfig(policy=str(policy_dir)), settings)
    assert status["state"] == "failed" and status["failed_stage"] == "grpo"
    assert status["reason"] == (
        "imagined GRPO is not available: cannot import trainer.not_written_yet "
        "(No module named 'trainer.not_written_yet')"
    )
    assert [p["state"] for p in status["progress"]] == ["done", "done", "done", "failed", "pending", "pending"]
    assert registered(settings) == []


def test_require_names_the_missing_function() -> None:
    with pytest.raises(StageUnavailable, match=r"evaluation is not available: trainer.grpo has no evaluate_policy\(\)"):
        require("trainer.grpo", "evaluate_policy", "evaluation")
    assert require("trainer.grpo", "train_grpo", "GRPO").__name__ == "train_grpo"


def test_the_policy_can_be_a_registry_alias(embedded, episodes, policy_dir) -> None:
    reg = Registry(embedded.registry_db, embedded.registry_artifacts_dir)
    with reg.session() as s:
        parent, _ = policies.register_policy(s, reg.artifacts, policy_dir, by="test")
        policies.set_alias(s, FLEET, "production", parent.version, by="test")
        parent_version, parent_path = parent.version, parent.artifact_path
    reg.close()
    status = run_cycle_inline(CycleConfig(policy="production"), embedded)
    assert status["state"] == "succeeded", status
    assert status["config"]["policy"] == parent_path  # the run keeps the folder, not the moving alias
    rows = {version: run for version, run, _ in registered(embedded)}
    assert set(rows) == {parent_version, status["candidate"]["version"]}
    unknown = run_cycle_inline(CycleConfig(policy="staging"), embedded)
    assert unknown["state"] == "failed" and "neither a folder nor in the registry" in unknown["reason"]
