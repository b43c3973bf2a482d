"""One step of a run: ``snapshot_step`` freezes its episodes, ``run_stage`` runs one stage of the stage table.
The Celery tasks (``tasks.py``) call them on a worker, ``run_cycle_inline`` (``pipeline.py``) in this process.

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
from typing import Any

from trainer.service.locks import Lease, LeaseLost, service_lock
from trainer.service.progress import (
    StageReporter,
    read_json,
    read_run,
    update_run,
    update_stage,
    worker_name,
    write_json,
)
from trainer.service.settings import ServiceSettings
from trainer.service.snapshot import Snapshot, idempotency_key, resolve_policy, take_snapshot
from trainer.service.stage import (
    CycleConfig,
    Stage,
    StageContext,
    StageError,
    StageOutput,
    stage_levels,
)

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
    with service_lock(settings, f"stage:{key}:{name}", ttl_s=settings.stage_lease_s) as lease:
        if done.is_file():
            out = StageOutput.from_json(read_json(done))
            update_stage(settings, run_id, name, state="done", reused=True, metrics=dict(out.metrics))
        else:
            out = _run_once(settings, run_id, record, stage, work_dir, publish, lease)
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
    lease: Lease | None = None,
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
        report=StageReporter(settings, run_id, stage.name, publish, lease=lease),
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
    except LeaseLost as e:  # not a failure: it resumes from its checkpoints
        update_stage(settings, run_id, stage.name, state="interrupted", reason=str(e), finished_at=time.time())
        raise
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
