"""Real ``flywheel worker`` processes on the embedded SQLite broker and on Redis: a cycle end to end,
a worker SIGKILLed mid-training and its run resumed by another, two workers sharing a cycle."""

from __future__ import annotations

import pytest
from cycle_stages import executions
from service_helpers import finished, flywheel, registered, service_env, stage, submit, wait_for, write_config

from trainer.service.stages import training_run_tag


def test_embedded_broker_runs_a_cycle_with_a_real_worker(embedded, episodes, policy_dir, workers) -> None:
    assert embedded.broker.startswith("sqla+sqlite:///") and embedded.backend.startswith("db+sqlite:///")
    w = workers(embedded)
    env = service_env(embedded)
    run_id = submit(env, "--policy", str(policy_dir))
    status = finished(embedded, run_id, 90)
    assert status["state"] == "succeeded", (status, w.output()[-3000:])
    assert [r[0] for r in registered(embedded)] == [status["candidate"]["version"]]
    shown = flywheel(env, "train", "status", run_id)
    assert shown.returncode == 0
    for word in ("world_model", "reward_model", "grpo", "evaluate", "register", status["candidate"]["version"]):
        assert word in shown.stdout


@pytest.mark.redis
def test_redis_cycle_reports_progress_and_registers_the_candidate(
    redis_settings, episodes, policy_dir, workers
) -> None:
    from celery.result import AsyncResult

    from trainer.service.celery_app import create_app

    workers(redis_settings)
    env = service_env(redis_settings)
    config = write_config(redis_settings, str(policy_dir), world_model={"steps": 30, "pace_s": 0.1})
    run_id = submit(env, "--config", config)
    # the world model's task reports PROGRESS with its step through the Redis result backend
    task_id = wait_for(lambda: stage(redis_settings, run_id, "world_model").get("task_id"), 60, "world-model task")
    app = create_app(redis_settings)
    meta = wait_for(
        lambda: (r := AsyncResult(task_id, app=app)).state == "PROGRESS" and r.info, 30, "PROGRESS in the backend"
    )
    assert meta["stage"] == "world_model" and meta["run_id"] == run_id and 0 < meta["step"] <= 30
    assert "loss" in meta["metrics"]
    status = finished(redis_settings, run_id, 90)
    assert status["state"] == "succeeded", status
    assert AsyncResult(task_id, app=app).state == "SUCCESS"
    rows = registered(redis_settings)
    assert len(rows) == 1
    version, tag, metrics = rows[0]
    assert version == status["candidate"]["version"] and tag == training_run_tag(status["key"])
    assert metrics["dynamics_mse"] == pytest.approx(status["results"]["evaluate"]["metrics"]["dynamics_mse"])
    app.close()


@pytest.mark.redis
@pytest.mark.slow
def test_a_worker_killed_during_world_model_training_resumes_on_another(
    redis_settings, episodes, policy_dir, workers
) -> None:
    first = workers(redis_settings, "first")
    env = service_env(redis_settings)
    steps = 30
    config = write_config(redis_settings, str(policy_dir), world_model={"steps": steps, "pace_s": 0.15, "every": 4})
    run_id = submit(env, "--config", config)
    wait_for(lambda: (stage(redis_settings, run_id, "world_model").get("step") or 0) >= 10, 60, "world model mid-way")
    first.kill()  # SIGKILL to the whole process group: no warm shutdown, no ack
    assert stage(redis_settings, run_id, "world_model")["state"] == "running"
    workers(redis_settings, "second")
    status = finished(redis_settings, run_id, 120)
    assert status["state"] == "succeeded", status

    wm = stage(redis_settings, run_id, "world_model")
    assert wm["attempts"] == 2 and wm["resumed"] is True
    runs = [e for e in executions(redis_settings.work_dir / status["key"]) if e["stage"] == "world_model"]
    starts = [e for e in runs if e["event"] == "start"]
    assert len(starts) == 2 and starts[0]["pid"] != starts[1]["pid"]
    assert starts[0]["from_step"] == 0 and 8 <= starts[1]["from_step"] < steps  # resumed from a checkpoint
    assert [e["event"] for e in runs].count("end") == 1
    rows = registered(redis_settings)
    assert [r[1] for r in rows] == [training_run_tag(status["key"])]  # exactly one candidate


@pytest.mark.redis
@pytest.mark.slow
def test_two_workers_train_world_and_reward_model_at_once(redis_settings, episodes, policy_dir, workers) -> None:
    a, b = workers(redis_settings, "a"), workers(redis_settings, "b")
    env = service_env(redis_settings)
    slow = {"steps": 20, "pace_s": 0.15}
    config = write_config(redis_settings, str(policy_dir), world_model=slow, reward_model=slow)
    a.wait_ready(60)  # both consuming, so each can take one of the pair
    b.wait_ready(60)
    run_id = submit(env, "--config", config)
    status = finished(redis_settings, run_id, 90)
    assert status["state"] == "succeeded", (status, a.output()[-2000:], b.output()[-2000:])
    wm, rm = stage(redis_settings, run_id, "world_model"), stage(redis_settings, run_id, "reward_model")
    assert wm["worker"] != rm["worker"]
    assert wm["started_at"] < rm["finished_at"] and rm["started_at"] < wm["finished_at"]  # they overlapped
    assert len(registered(redis_settings)) == 1


@pytest.mark.slow
def test_on_the_embedded_broker_a_killed_run_is_resumed_by_hand(embedded, episodes, policy_dir, workers) -> None:
    """The SQLite transport does not redeliver a killed worker's message: ``--resume`` queues the run again."""
    first = workers(embedded, "first")
    env = service_env(embedded)
    config = write_config(embedded, str(policy_dir), world_model={"steps": 24, "pace_s": 0.15, "every": 4})
    run_id = submit(env, "--config", config)
    wait_for(lambda: (stage(embedded, run_id, "world_model").get("step") or 0) >= 10, 60, "world model mid-way")
    first.kill()
    workers(embedded, "second")
    out = flywheel(env, "train", "cycle", "--resume", run_id)
    assert out.returncode == 0, out.stdout + out.stderr
    status = finished(embedded, run_id, 90)
    assert status["state"] == "succeeded", status
    wm = stage(embedded, run_id, "world_model")
    assert wm["attempts"] == 2 and wm["resumed"] is True
    assert stage(embedded, run_id, "snapshot")["state"] == "done"
    assert len(registered(embedded)) == 1
