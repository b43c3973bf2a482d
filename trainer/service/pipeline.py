"""The flywheel cycle, stage by stage: what a Celery task runs, and the same without a broker.

A run goes: ``start_run`` (run record, state queued) → ``snapshot_step`` (freeze the episodes; the
idempotency key is now known) → ``run_stage`` for each stage of the stage table, in the order their
``needs`` allow. ``cycle_signature`` chains these as Celery tasks (stages of one level in a group,
so two workers train the world model and the reward model at once); ``run_cycle_inline`` runs them
in this process.

Idempotency (a message delivered twice): every stage works in ``work/<key>/<stage>/`` where the key
hashes (snapshot, config); ``done.json`` is written only after the stage returned, and a stage with
a ``done.json`` is not run again. A stage runs under a lease named after its key, so a duplicate
delivered while the first is still running waits for it, then finds it done. A stage killed
mid-way leaves its checkpoints and the next delivery resumes from them (``ctx.resume``). The
register stage asks the registry for the key itself, in case it died between registering and
writing ``done.json``.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_store.registry.runs import new_run_id
from trainer.service.locks import service_lock
from trainer.service.progress import (
    StageReporter,
    create_run,
    read_json,
    read_run,
    run_status,
    update_run,
    update_stage,
    worker_name,
    write_json,
)
from trainer.service.settings import ServiceSettings, load_settings
from trainer.service.snapshot import Snapshot, idempotency_key, resolve_policy, take_snapshot
from trainer.service.stage import CycleConfig, Stage, StageContext, StageError, StageOutput, stage_levels

if TYPE_CHECKING:
    from celery.canvas import Signature

Publish = Callable[[dict[str, Any]], None]


def load_stage_table(settings: ServiceSettings) -> dict[str, Stage]:
    """The stages named by ``settings.stage_table`` ("module:attribute"), in table order."""
    module, _, attr = settings.stage_table.partition(":")
    try:
        table = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise StageError(f"stage table {settings.stage_table!r} cannot be loaded: {e}") from e
    stage_levels(table)  # checks the needs
    return dict(table)


def start_run(
    settings: ServiceSettings, config: CycleConfig, *, trigger: str = "cli", run_id: str | None = None
) -> str:
    """Write the run record (state queued) and return its run id."""
    table = load_stage_table(settings)
    run_id = run_id or new_run_id()
    create_run(settings, run_id, config.to_json(), list(table), trigger)
    return run_id


def fail_run(settings: ServiceSettings, run_id: str, stage: str, reason: str) -> None:
    update_stage(settings, run_id, stage, state="failed", reason=reason, finished_at=time.time())
    update_run(settings, run_id, state="failed", reason=reason, failed_stage=stage)


def snapshot_step(settings: ServiceSettings, run_id: str, publish: Publish | None = None) -> dict[str, Any]:
    """Freeze the run's episodes once; a redelivery finds the recorded snapshot and returns it."""
    with service_lock(settings, f"snapshot:{run_id}", ttl_s=settings.stage_lease_s):
        record = read_run(settings, run_id)
        if record["state"] == "failed":
            raise StageError(f"run {run_id} failed earlier: {record['reason']}")
        if record["snapshot"] is not None:
            return record
        config = CycleConfig.from_json(record["config"])
        update_stage(settings, run_id, "snapshot", state="running", worker=worker_name(), started_at=time.time())
        try:
            policy = resolve_policy(config.policy, settings)
            config = dataclasses.replace(config, policy=policy)
            snap = take_snapshot(settings.store_path, config)
        except StageError as e:
            fail_run(settings, run_id, "snapshot", str(e))
            raise
        except Exception as e:
            fail_run(settings, run_id, "snapshot", f"snapshot: {type(e).__name__}: {e}")
            raise
        key = idempotency_key(snap, config)
        write_json(settings.work_dir / key / "snapshot.json", {"snapshot": snap.to_json(), "config": config.to_json()})
        metrics = {"episodes": float(len(snap.episodes)), "steps": float(snap.steps)}
        done = {"state": "done", "step": 1, "total": 1, "metrics": metrics, "finished_at": time.time()}
        update_stage(settings, run_id, "snapshot", **done)
        if publish is not None:
            publish({"run_id": run_id, "stage": "snapshot", "step": 1, "total": 1, "metrics": metrics})
        return update_run(settings, run_id, state="running", snapshot=snap.to_json(), key=key, config=config.to_json())


def run_stage(settings: ServiceSettings, run_id: str, name: str, publish: Publish | None = None) -> StageOutput:
    """Run one stage of the run, or return its output when the same key finished it before."""
    record = read_run(settings, run_id)
    if record["state"] == "failed":
        raise StageError(f"run {run_id} failed earlier: {record['reason']}")
    if record["key"] is None:
        raise StageError(f"run {run_id} has no snapshot yet: the snapshot stage must run first")
    table = load_stage_table(settings)
    if name not in table:
        raise StageError(f"no stage {name!r} in the stage table {settings.stage_table} ({', '.join(table)})")
    stage, key = table[name], record["key"]
    work_dir = settings.work_dir / key
    done = work_dir / name / "done.json"
    with service_lock(settings, f"stage:{key}:{name}", ttl_s=settings.stage_lease_s):
        if done.is_file():
            out = StageOutput.from_json(read_json(done))
            update_stage(settings, run_id, name, state="done", reused=True, metrics=dict(out.metrics))
        else:
            out = _run_once(settings, run_id, record, stage, work_dir, publish)
            write_json(done, out.to_json())
    _record_output(settings, run_id, name, out, table)
    return out


def _run_once(
    settings: ServiceSettings,
    run_id: str,
    record: Mapping[str, Any],
    stage: Stage,
    work_dir: Path,
    publish: Publish | None,
) -> StageOutput:
    try:
        inputs = _inputs(work_dir, stage)
    except StageError as e:
        fail_run(settings, run_id, stage.name, str(e))
        raise
    ctx = StageContext(
        run_id=run_id,
        key=record["key"],
        stage=stage.name,
        config=CycleConfig.from_json(record["config"]),
        snapshot=Snapshot.from_json(record["snapshot"]),
        settings=settings,
        work_dir=work_dir,
        inputs=inputs,
        report=StageReporter(settings, run_id, stage.name, publish),
        resume=_left_behind(work_dir / stage.name),
    )
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    attempts = int(_stage_file(settings, run_id, stage.name).get("attempts", 0)) + 1
    update_stage(
        settings, run_id, stage.name, state="running", attempts=attempts, worker=worker_name(), resumed=ctx.resume,
        started_at=time.time(), reused=False,
    )  # fmt: skip
    try:
        out = stage.run(ctx)
    except StageError as e:
        fail_run(settings, run_id, stage.name, str(e))
        raise
    except Exception as e:
        fail_run(settings, run_id, stage.name, f"{stage.name}: {type(e).__name__}: {e}")
        raise
    update_stage(settings, run_id, stage.name, state="done", metrics=dict(out.metrics), finished_at=time.time())
    return out


def _left_behind(stage_dir: Path) -> bool:
    """Did an earlier, interrupted delivery leave files (checkpoints, partial outputs)? Nothing is done yet."""
    return stage_dir.is_dir() and any(p.is_file() for p in stage_dir.rglob("*"))


def _inputs(work_dir: Path, stage: Stage) -> dict[str, StageOutput]:
    inputs = {}
    for need in stage.needs:
        path = work_dir / need / "done.json"
        if not path.is_file():
            raise StageError(f"{stage.name}: the stage it needs, {need!r}, has not finished")
        inputs[need] = StageOutput.from_json(read_json(path))
    return inputs


def _stage_file(settings: ServiceSettings, run_id: str, stage: str) -> dict[str, Any]:
    path = settings.runs_dir / run_id / "stages" / f"{stage}.json"
    return read_json(path) if path.is_file() else {}


def _record_output(
    settings: ServiceSettings, run_id: str, name: str, out: StageOutput, table: Mapping[str, Stage]
) -> None:
    """Put the stage's metrics in the run record; the last stage done makes the run succeeded."""

    def merge(record: dict[str, Any]) -> dict[str, Any]:
        results = {**(record.get("results") or {}), name: out.to_json()}
        fields: dict[str, Any] = {"results": results}
        if "candidate" in out.info:
            fields["candidate"] = out.info["candidate"]
        if "outcome" in out.info:  # the register stage: "promoted", or "no improvement" and why
            fields.update(outcome=out.info["outcome"], outcome_reason=out.info.get("reason"))
        if all(s in results for s in table):
            fields.update(state="succeeded", finished_at=time.time())
        return fields

    update_run(settings, run_id, merge)


def cycle_signature(settings: ServiceSettings, run_id: str) -> Signature:
    """snapshot | group(level 1) | level 2 | ...: a Celery chain; a group followed by a task is a chord."""
    from celery import chain, group

    from trainer.service.tasks import snapshot_task, stage_task

    table = load_stage_table(settings)
    steps: list[Any] = [snapshot_task.si(run_id).set(queue="cpu")]
    for level in stage_levels(table):
        sigs = [stage_task.si(run_id, name).set(queue=table[name].queue) for name in level]
        steps.append(sigs[0] if len(sigs) == 1 else group(sigs))
    return chain(*steps)


def submit_cycle(
    config: CycleConfig, settings: ServiceSettings | None = None, *, trigger: str = "cli", run_id: str | None = None
) -> str:
    """Queue one cycle on the broker; returns the run id at once (``run_status`` follows it)."""
    from trainer.service.celery_app import ensure_dirs

    settings = settings or load_settings()
    ensure_dirs(settings)
    run_id = start_run(settings, config, trigger=trigger, run_id=run_id)
    result = publish_with_retry(cycle_signature(settings, run_id))
    update_run(settings, run_id, celery_id=result.id)
    return run_id


def publish_with_retry(signature: Any, attempts: int = 5) -> Any:
    """``apply_async`` with a bounded retry. On the embedded SQLite broker a worker that is starting can
    hold the broker file ("database is locked"); kombu then leaves the channel without a connection and
    the publish fails with an error Celery's own retry (connection errors only) does not cover. A message
    sent twice is harmless: every stage is idempotent (keyed by snapshot and config)."""
    for attempt in range(attempts):
        try:
            return signature.apply_async()
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def resume_cycle(run_id: str, settings: ServiceSettings | None = None) -> str:
    """Queue an existing run again: finished stages are skipped, an interrupted one resumes from its
    checkpoints. For a run whose worker died on a broker that does not redeliver (the SQLite
    default), or one that failed for a reason since fixed. Returns the Celery id of the new chain."""
    from trainer.service.celery_app import ensure_dirs

    settings = settings or load_settings()
    ensure_dirs(settings)
    record = read_run(settings, run_id)
    if record["state"] == "succeeded":
        raise StageError(f"run {run_id} already succeeded")
    if record.get("failed_stage"):
        update_stage(settings, run_id, record["failed_stage"], state="pending", reason=None)
    update_run(settings, run_id, reopen=True, state="queued" if record["key"] is None else "running", reason=None)
    result = publish_with_retry(cycle_signature(settings, run_id))
    update_run(settings, run_id, celery_id=result.id, failed_stage=None)
    return str(result.id)


def run_cycle_inline(
    config: CycleConfig,
    settings: ServiceSettings | None = None,
    *,
    publish: Publish | None = None,
    run_id: str | None = None,
    trigger: str = "inline",
) -> dict[str, Any]:
    """The same stages in this process, no broker (``flywheel demo``, notebooks, debugging).

    Returns ``run_status(run_id)``. A stage that fails for a reason (``StageError``: bad input, a
    missing stage) leaves the run failed with that reason and raises nothing, like a queued run
    would; any other exception is recorded as the run's reason and raised.
    """
    settings = settings or load_settings()
    run_id = start_run(settings, config, trigger=trigger, run_id=run_id)
    try:
        snapshot_step(settings, run_id, publish)
        for level in stage_levels(load_stage_table(settings)):
            for name in level:
                run_stage(settings, run_id, name, publish)
    except StageError:
        pass
    return run_status(run_id, settings)
