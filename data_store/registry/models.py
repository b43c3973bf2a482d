"""The registry's tables (SQLAlchemy 2 typed ORM).

- ``PolicyVersion``: immutable once written; one row per distinct artifact (by sha256).
- ``Alias``: a name (``production``, ``candidate``, anything) pointing at a version, for the fleet
  (``scope="fleet"``) or one robot (``scope="robot:<id>"``); the version it pointed at before is kept
  so a rollback needs no search.
- ``AuditEvent``: append-only (updates and deletes raise); answers "which version ran on robot R at
  time T" (``swap`` and ``running`` events) and "who rolled what out when" (``rollout``, ``rollback``,
  ``alias``).
- ``Robot``, ``EpisodeRecord`` (the index robots push; the episodes stay in their Zarr store),
  ``Rollout`` (all at once or canary first), ``TrainingRun``, ``ApiToken`` (only the sha256 of a token).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from data_store.registry.db import Base, utcnow

FLEET = "fleet"


def robot_scope(robot_id: str) -> str:
    return f"robot:{robot_id}"


class PolicyVersion(Base):
    __tablename__ = "policy_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(sa.String(128), unique=True)
    sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)  # of manifest.json, which hashes every file
    artifact_path: Mapped[str] = mapped_column(sa.Text)
    manifest: Mapped[dict[str, Any]]
    parent: Mapped[str | None] = mapped_column(sa.String(128))
    training_run: Mapped[str | None] = mapped_column(sa.String(128))
    metrics: Mapped[dict[str, Any]]
    action_dim: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(sa.String(128))


class Alias(Base):
    __tablename__ = "aliases"
    __table_args__ = (sa.UniqueConstraint("scope", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(sa.String(160))
    name: Mapped[str] = mapped_column(sa.String(64))
    version: Mapped[str] = mapped_column(sa.String(128))
    previous: Mapped[str | None] = mapped_column(sa.String(128))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)
    set_by: Mapped[str] = mapped_column(sa.String(128))


class AuditEvent(Base):
    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_robot_at", "robot_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(sa.String(128))
    action: Mapped[str] = mapped_column(sa.String(32), index=True)
    robot_id: Mapped[str | None] = mapped_column(sa.String(128))
    version: Mapped[str | None] = mapped_column(sa.String(128))
    detail: Mapped[dict[str, Any]]


@sa.event.listens_for(AuditEvent, "before_update")
@sa.event.listens_for(AuditEvent, "before_delete")
def _audit_is_append_only(_mapper: Mapper[Any], _conn: Any, target: AuditEvent) -> None:
    raise PermissionError(f"the audit log is append-only (event {target.id})")


class Robot(Base):
    __tablename__ = "robots"

    robot_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    spec: Mapped[dict[str, Any]]
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime | None]
    running_version: Mapped[str | None] = mapped_column(sa.String(128))
    health: Mapped[dict[str, Any]]
    last_episode_id: Mapped[str | None] = mapped_column(sa.String(128))


class EpisodeRecord(Base):
    __tablename__ = "episodes"
    __table_args__ = (sa.Index("ix_episodes_version_ended", "policy_version", "ended_at"),)

    episode_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    robot_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    policy_version: Mapped[str] = mapped_column(sa.String(128))
    task: Mapped[str] = mapped_column(sa.String(128))
    success: Mapped[str] = mapped_column(sa.String(8))  # "true" | "false" | "unknown"
    length: Mapped[int]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(sa.Text)
    labeled_by: Mapped[str | None] = mapped_column(sa.String(128))


class Rollout(Base):
    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(sa.String(128))
    robots: Mapped[list[str]]
    canary: Mapped[list[str]]
    previous: Mapped[dict[str, Any]]  # robot id -> the version it was meant to run before
    # canary | rolling_out (robots moving) | complete (every target robot runs it) | halted | refused | rolled_back
    # | superseded (another rollout moved its robots before every one ran it)
    status: Mapped[str] = mapped_column(sa.String(16))
    # A canary's plan (``rollouts.CanaryPlan``): the optional floor on its rate (the column kept its first
    # name), the canary episodes at the first look, at the last, and how many looks.
    min_success_rate: Mapped[float | None] = mapped_column("threshold")
    min_episodes: Mapped[int]
    max_episodes: Mapped[int | None]
    looks: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(sa.String(128))
    decided_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(sa.Text)
    # robot id -> {"state": "refused", "reason": ...}: what a robot said of this rollout (``rollouts.robot_states``)
    outcomes: Mapped[dict[str, Any] | None]


class TrainingRun(Base):
    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(16))  # requested | running | succeeded | failed | unavailable
    params: Mapped[dict[str, Any]]
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    requested_by: Mapped[str] = mapped_column(sa.String(128))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    stage: Mapped[str | None] = mapped_column(sa.String(64))
    progress: Mapped[float] = mapped_column(default=0.0)
    result: Mapped[dict[str, Any]]
    reason: Mapped[str | None] = mapped_column(sa.Text)
    external_id: Mapped[str | None] = mapped_column(sa.String(128))


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128))
    role: Mapped[str] = mapped_column(sa.String(16))
    token_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # None: a person's token (its role is all). "robot:<id>": acts only as that robot. "trainer": the trainer,
    # the only token besides an admin's that writes a training run's progress and result.
    bound_to: Mapped[str | None] = mapped_column(sa.String(160), nullable=True, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
