"""The flywheel cycle, stage by stage: queued on the broker, or the same without a broker.

A run goes: ``start_run`` (run record, state queued) → ``snapshot_step`` (freeze the episodes; the
idempotency key is now known) → ``run_stage`` for each stage of the stage table, in the order their
``needs`` allow (both in ``execute.py``, idempotent). ``cycle_signature`` chains these as Celery tasks
(``tasks.py``; stages of one level in a group, so two workers train the world model and the reward model
at once) and ``submit_cycle`` queues the chain; ``take_cycle`` does the same for a cycle the control plane sent
by task name; ``run_cycle_inline`` runs them in this process.

Celery loads only when a cycle is queued: a run in this process (``flywheel demo``, ``--inline``) needs no
broker, and importing the app builds it from the settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from data_store.jobs import SNAPSHOT_TASK, STAGE_TASK, with_retry
from data_store.registry.runs import new_run_id
from trainer.service.execute import Publish, load_stage_table, run_stage, snapshot_step
from trainer.service.progress import create_run, read_run, run_status, update_run, update_stage
from trainer.service.settings import ServiceSettings, load_settings
from trainer.service.stage import CycleConfig, StageError, stage_levels

if TYPE_CHECKING:
    from celery.canvas import Signature


def start_run(
    settings: ServiceSettings, config: CycleConfig, *, trigger: str = "cli", run_id: str | None = None
) -> str:
    """Write the run record (state queued) and return its run id."""
    table = load_stage_table(settings)
    run_id = run_id or new_run_id()
    create_run(settings, run_id, config.to_json(), list(table), trigger)
    return run_id


def cycle_signature(settings: ServiceSettings, run_id: str) -> Signature:
    """snapshot | group(level 1) | level 2 | ...: a Celery chain; a group followed by a task is a chord."""
    from celery import chain, group  # Celery and the app load only when a cycle is queued (module docstring)

    from trainer.service.celery_app import app

    def task(name: str, *args: str, queue: str) -> Signature:  # by name: tasks.py imports this module
        return app.signature(name, args=args, immutable=True).set(queue=queue)

    table = load_stage_table(settings)
    steps: list[Any] = [task(SNAPSHOT_TASK, run_id, queue="cpu")]
    for level in stage_levels(table):
        sigs = [task(STAGE_TASK, run_id, name, queue=table[name].queue) for name in level]
        steps.append(sigs[0] if len(sigs) == 1 else group(sigs))
    return chain(*steps)


def submit_cycle(
    config: CycleConfig, settings: ServiceSettings | None = None, *, trigger: str = "cli", run_id: str | None = None
) -> str:
    """Queue one cycle on the broker; returns the run id at once (``run_status`` follows it)."""
    from trainer.service.celery_app import ensure_dirs  # lazy: see the module docstring

    settings = settings or load_settings()
    ensure_dirs(settings)
    run_id = start_run(settings, config, trigger=trigger, run_id=run_id)
    result = with_retry(cycle_signature(settings, run_id).apply_async)
    update_run(settings, run_id, celery_id=result.id)
    return run_id


def take_cycle(
    params: Mapping[str, Any], run_id: str, trigger: str = "serve", settings: ServiceSettings | None = None
) -> str:
    """A cycle another component sent by task name (``data_store.jobs.send_cycle``): check its parameters and queue
    it as ``submit_cycle`` does. Parameters the trainer refuses (a recipe it does not know) fail the run with the
    reason, which reaches the sender's registry row. A message delivered twice starts the run once."""
    settings = settings or load_settings()
    try:
        record: dict[str, Any] | None = read_run(settings, run_id)
    except KeyError:
        record = None
    if record is not None:
        if record.get("celery_id") or record["state"] != "queued":
            return run_id
        result = with_retry(cycle_signature(settings, run_id).apply_async)  # written, then the worker died
        update_run(settings, run_id, celery_id=result.id)
        return run_id
    try:
        config = CycleConfig.from_json(params)
        config.resolved_recipe()  # ValueError naming an unknown recipe or setting
    except (TypeError, ValueError) as e:
        create_run(settings, run_id, dict(params), [], trigger)
        update_run(settings, run_id, state="failed", reason=f"the trainer refused the run: {e}")
        return run_id
    return submit_cycle(config, settings, trigger=trigger, run_id=run_id)


def resume_cycle(run_id: str, settings: ServiceSettings | None = None) -> str:
    """Queue an existing run again: finished stages are skipped, an interrupted one resumes from its
    checkpoints. For a run whose worker died on a broker that does not redeliver (the SQLite
    default), or one that failed for a reason since fixed. Returns the Celery id of the new chain."""
    from trainer.service.celery_app import ensure_dirs  # lazy: see the module docstring

    settings = settings or load_settings()
    ensure_dirs(settings)
    record = read_run(settings, run_id)
    if record["state"] == "succeeded":
        raise StageError(f"run {run_id} already succeeded")
    if record.get("failed_stage"):
        update_stage(settings, run_id, record["failed_stage"], state="pending", reason=None)
    update_run(settings, run_id, reopen=True, state="queued" if record["key"] is None else "running", reason=None)
    result = with_retry(cycle_signature(settings, run_id).apply_async)
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
