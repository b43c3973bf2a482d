"""The trainer's job queue as the other components see it: send a cycle by task name, without the trainer's code.

The control plane (``POST /runs``) hands a cycle to the trainer service here: one message, ``flywheel.start_cycle``
with the run's parameters and its id, on the broker both read from ``FlywheelSettings`` (Redis, or the embedded
SQLite file under the data folder). A worker takes it, checks the parameters (a recipe it does not know fails the
run with that reason), writes the run record and queues the cycle's stages (``trainer.service.tasks``); the run's
progress comes back through the registry's run row, which the trainer keeps up to date. A message waits in the
queue until a worker is there to take it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from celery import Celery

    from data_store.settings import FlywheelSettings

CYCLE_TASK = "flywheel.start_cycle"  # (params, run_id, trigger): trainer.service.tasks.start_cycle_task
SNAPSHOT_TASK, STAGE_TASK = "flywheel.snapshot", "flywheel.stage"  # (run_id), (run_id, stage): what it queues
QUEUES = ("gpu", "cpu")  # each stage names one; the cycle's first task goes to "cpu"
T = TypeVar("T")


def send_cycle(settings: FlywheelSettings, params: Mapping[str, Any], run_id: str, trigger: str = "serve") -> str:
    """Queue one cycle as run ``run_id``; returns the message's id. Raises when the broker cannot be reached."""
    if settings.broker.startswith("sqla+sqlite:///"):  # the embedded broker's file: its folder may not exist yet
        Path(settings.broker.removeprefix("sqla+sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    app = _client(settings.broker, json.dumps(settings.broker_transport(), sort_keys=True))
    args = [dict(params), run_id, trigger]
    result = with_retry(lambda: app.send_task(CYCLE_TASK, args=args, queue="cpu", retry_policy={"max_retries": 2}))
    return str(result.id)


def with_retry(publish: Callable[[], T], attempts: int = 5) -> T:
    """``publish()`` with a bounded retry. On the embedded SQLite broker a worker that is starting can hold the
    broker file ("database is locked"); kombu then leaves the channel without a connection and the publish fails
    with an error Celery's own retry (connection errors only) does not cover. A message sent twice is harmless:
    every stage is idempotent (keyed by snapshot and config), and a run id is started once."""
    for attempt in range(attempts):
        try:
            return publish()
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


@cache
def _client(broker: str, transport_json: str) -> Celery:
    """A Celery app that only sends (no task module, no result backend), one per broker."""
    from celery import Celery  # the trainer's queue: celery is in the serve and train extras

    app = Celery("flywheel-client", broker=broker, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options=json.loads(transport_json),
        broker_connection_timeout=5,
        task_create_missing_queues=True,  # Queue(name, Exchange(name), routing_key=name): what the workers declare
    )
    return app
