"""The Celery tasks of a run: thin wrappers over ``execute.py`` that report progress to the result backend.

Every task takes only the run id (and the stage name): the run record on the shared data dir holds
the config, the snapshot and the key, so a redelivered message carries nothing stale. Each task
publishes ``PROGRESS`` (stage, step, total, metrics) through ``update_state`` as the stage reports it.
``pipeline.py`` chains them into a cycle; the nightly trigger's task, ``flywheel.nightly``, is in ``schedule.py``.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Task

from data_store.jobs import CYCLE_TASK, SNAPSHOT_TASK, STAGE_TASK
from trainer.service.celery_app import app
from trainer.service.execute import run_stage, snapshot_step
from trainer.service.locks import LeaseLost
from trainer.service.pipeline import take_cycle
from trainer.service.progress import update_stage, worker_name
from trainer.service.settings import load_settings


def _publisher(task: Task) -> Any:
    def publish(meta: dict[str, Any]) -> None:
        if task.request.id:
            task.update_state(state="PROGRESS", meta=meta)

    return publish


@app.task(bind=True, name=SNAPSHOT_TASK)
def snapshot_task(self: Task, run_id: str) -> dict[str, Any]:
    settings = load_settings()
    update_stage(settings, run_id, "snapshot", task_id=self.request.id)
    record = snapshot_step(settings, run_id, _publisher(self))
    return {"run_id": run_id, "stage": "snapshot", "key": record["key"]}


@app.task(bind=True, name=STAGE_TASK)
def stage_task(self: Task, run_id: str, stage: str) -> dict[str, Any]:
    settings = load_settings()
    update_stage(settings, run_id, stage, task_id=self.request.id)  # where the result backend has its progress
    try:
        out = run_stage(settings, run_id, stage, _publisher(self))
    except LeaseLost as e:
        # Its lease was lost (a broker outage): try again from its checkpoints. When the broker is still down the
        # retry cannot be sent either; beat's flywheel.recover resumes the run once it is back.
        raise self.retry(exc=e, countdown=30, max_retries=settings.max_recoveries) from e
    return {"run_id": run_id, "stage": stage, **out.to_json()}


@app.task(name=CYCLE_TASK)
def start_cycle_task(params: dict[str, Any], run_id: str, trigger: str = "serve") -> dict[str, Any]:
    """A cycle the control plane sent by name (``data_store.jobs.send_cycle``): checked, recorded, its stages queued."""
    return {"run_id": take_cycle(params, run_id, trigger)}


@app.task(name="flywheel.ping")
def ping_task() -> dict[str, Any]:
    """Which worker answered, and when: for health checks and ``flywheel bench service``."""
    return {"worker": worker_name(), "at": time.time()}
