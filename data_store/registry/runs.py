"""Training runs requested through the control plane: who asked, with what, how far along, the result.

The trainer (another process) writes each change of a run's state into its row (by the run's ``external_id``);
when the trainer service is not installed the run is kept with status ``unavailable`` and the reason, so nothing
asked for is lost.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from data_store.registry import audit
from data_store.registry.db import utcnow
from data_store.registry.errors import Invalid, NotFound
from data_store.registry.models import TrainingRun

STATUSES = ("requested", "running", "succeeded", "failed", "unavailable")


def new_run_id() -> str:
    """A trainer run's id (its ``external_id`` here): sorts by creation time, unique enough to name a folder."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def request_run(s: Session, params: dict[str, Any], *, by: str) -> TrainingRun:
    row = TrainingRun(status="requested", params=params, requested_by=by, result={})
    s.add(row)
    s.flush()
    audit.record(s, "train", actor=by, run=row.id, params=params)
    return row


def update_run(
    s: Session,
    run_id: int,
    *,
    status: str | None = None,
    stage: str | None = None,
    progress: float | None = None,
    result: dict[str, Any] | None = None,
    reason: str | None = None,
    external_id: str | None = None,
) -> TrainingRun:
    row = get_run(s, run_id)
    if status is not None:
        if status not in STATUSES:
            raise Invalid(f"status: expected one of {STATUSES}, got {status!r}")
        row.status = status
    if progress is not None:
        if not 0.0 <= progress <= 1.0:
            raise Invalid(f"progress: expected 0..1, got {progress}")
        row.progress = progress
    if stage is not None:
        row.stage = stage
    if result is not None:
        row.result = result
    if reason is not None:
        row.reason = reason
    if external_id is not None:
        row.external_id = external_id
    row.updated_at = utcnow()
    s.flush()
    return row


def mirror_run(
    s: Session, external_id: str, *, params: dict[str, Any], by: str, create: bool, **fields: Any
) -> TrainingRun | None:
    """The row of the trainer's run ``external_id``, updated with ``fields`` (as :func:`update_run`); created when
    there is none and ``create`` (a cycle started outside the control plane: the CLI, the nightly beat, the demo).
    None when there is none and not ``create`` (the control plane names its own rows once the trainer answers)."""
    row = s.scalar(sa.select(TrainingRun).where(TrainingRun.external_id == external_id))
    if row is None:
        if not create:
            return None
        row = request_run(s, params, by=by)
        row.external_id = external_id
    return update_run(s, row.id, **fields)


def get_run(s: Session, run_id: int) -> TrainingRun:
    row = s.get(TrainingRun, run_id)
    if row is None:
        raise NotFound(f"no training run {run_id}")
    return row


def list_runs(s: Session, *, limit: int = 100, offset: int = 0) -> list[TrainingRun]:
    return list(s.scalars(sa.select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit).offset(offset)))
