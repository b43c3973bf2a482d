"""The append-only audit log: every registration, alias change, rollout, rollback and swap.

Two questions it answers:
- "which version ran on robot R at time T": the last ``swap`` (reported by the robot when a swap took
  effect) or ``running`` (first heartbeat with a version the log did not know) event for R at or before T;
- "who rolled what out when": ``rollout``, ``promote``, ``halt``, ``rollback`` and ``alias`` events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from data_store.registry.db import utcnow
from data_store.registry.models import AuditEvent

RAN = ("swap", "running")  # events after which a robot is known to run ``version``
ROLLOUT_ACTIONS = ("register", "alias", "rollout", "promote", "halt", "rollback")


def record(
    s: Session,
    action: str,
    *,
    actor: str,
    robot_id: str | None = None,
    version: str | None = None,
    at: datetime | None = None,
    **detail: Any,
) -> AuditEvent:
    event = AuditEvent(at=at or utcnow(), actor=actor, action=action, robot_id=robot_id, version=version, detail=detail)
    s.add(event)
    s.flush()
    return event


def events(
    s: Session,
    *,
    robot_id: str | None = None,
    actions: tuple[str, ...] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[AuditEvent]:
    """Newest first; ``offset`` skips that many (the next page)."""
    q = sa.select(AuditEvent)
    if robot_id is not None:
        q = q.where(AuditEvent.robot_id == robot_id)
    if actions:
        q = q.where(AuditEvent.action.in_(actions))
    if since is not None:
        q = q.where(AuditEvent.at >= since)
    if until is not None:
        q = q.where(AuditEvent.at <= until)
    return list(s.scalars(q.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit).offset(offset)))


def version_running_at(s: Session, robot_id: str, at: datetime) -> str | None:
    """The version robot ``robot_id`` was running at ``at`` (None before its first report)."""
    found = events(s, robot_id=robot_id, actions=RAN, until=at, limit=1)
    return found[0].version if found else None


def last_known_running(s: Session, robot_id: str) -> str | None:
    found = events(s, robot_id=robot_id, actions=RAN, limit=1)
    return found[0].version if found else None
