"""Robots and the episode index they push.

A robot registers with its ``RobotSpec`` (as JSON), then heartbeats with the version it runs and its
health; it reports each swap (taken effect or refused, with the reason) and indexes each finished
episode (the frames stay in the robot's Zarr store). Success rates come from that index: per version,
per set of robots, and per time bucket for the dashboard's plot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from data_store.registry import audit
from data_store.registry.db import utcnow
from data_store.registry.errors import Invalid, NotFound
from data_store.registry.models import AuditEvent, EpisodeRecord, Robot
from data_store.stats import wilson

SUCCESS_LABELS = ("true", "false", "unknown")


def register_robot(s: Session, robot_id: str, spec: dict[str, Any], *, by: str) -> Robot:
    """Add a robot or update its spec (a robot re-registers on every start)."""
    row = s.get(Robot, robot_id)
    if row is None:
        row = Robot(robot_id=robot_id, spec=spec, health={})
        s.add(row)
        s.flush()
        audit.record(s, "robot", actor=by, robot_id=robot_id, spec=spec)
    elif row.spec != spec:
        row.spec = spec
        audit.record(s, "robot", actor=by, robot_id=robot_id, spec=spec)
    return row


def get_robot(s: Session, robot_id: str) -> Robot:
    row = s.get(Robot, robot_id)
    if row is None:
        raise NotFound(f"no robot {robot_id!r} (robots register with POST /robots first)")
    return row


def list_robots(s: Session) -> list[Robot]:
    return list(s.scalars(sa.select(Robot).order_by(Robot.robot_id)))


def heartbeat(
    s: Session,
    robot_id: str,
    *,
    running_version: str | None,
    health: dict[str, Any],
    last_episode_id: str | None = None,
) -> Robot:
    """Record that the robot is alive and what it runs. A version the log has not seen it run
    (a robot that started with a local policy) is logged as a ``running`` event."""
    row = get_robot(s, robot_id)
    row.last_seen = utcnow()
    row.health = health
    if last_episode_id:
        row.last_episode_id = last_episode_id
    if running_version and running_version != audit.last_known_running(s, robot_id):
        audit.record(s, "running", actor=robot_id, robot_id=robot_id, version=running_version)
    row.running_version = running_version
    s.flush()
    return row


def report_swap(
    s: Session,
    robot_id: str,
    *,
    version: str,
    ok: bool,
    reason: str = "",
    at: datetime | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """A swap the robot made (``ok``: it runs ``version`` since ``at``) or refused (with the reason)."""
    row = get_robot(s, robot_id)
    if ok:
        row.running_version = version
    return audit.record(
        s,
        "swap" if ok else "swap_refused",
        actor=robot_id,
        robot_id=robot_id,
        version=version,
        at=at,
        reason=reason,
        **(detail or {}),
    )


def index_episode(
    s: Session,
    *,
    episode_id: str,
    robot_id: str,
    policy_version: str,
    task: str,
    success: str,
    length: int,
    ended_at: datetime,
    started_at: datetime | None = None,
    reason: str | None = None,
) -> EpisodeRecord:
    """Add (or, when a robot re-sends it, replace) one episode in the index."""
    if success not in SUCCESS_LABELS:
        raise Invalid(f"success: expected one of {SUCCESS_LABELS}, got {success!r}")
    robot = get_robot(s, robot_id)
    row = s.get(EpisodeRecord, episode_id)
    if row is None:
        row = EpisodeRecord(episode_id=episode_id)
        s.add(row)
    row.robot_id, row.policy_version, row.task, row.success = robot_id, policy_version, task, success
    row.length, row.started_at, row.ended_at, row.reason = length, started_at, ended_at, reason
    robot.last_episode_id = episode_id
    s.flush()
    return row


def label_episode(s: Session, episode_id: str, success: bool, *, by: str) -> EpisodeRecord:
    row = s.get(EpisodeRecord, episode_id)
    if row is None:
        raise NotFound(f"no episode {episode_id!r} in the index")
    row.success = "true" if success else "false"
    row.labeled_by = by
    s.flush()
    return row


def list_episodes(
    s: Session,
    *,
    robot_id: str | None = None,
    policy_version: str | None = None,
    since: datetime | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[EpisodeRecord]:
    q = sa.select(EpisodeRecord)
    if robot_id is not None:
        q = q.where(EpisodeRecord.robot_id == robot_id)
    if policy_version is not None:
        q = q.where(EpisodeRecord.policy_version == policy_version)
    if since is not None:
        q = q.where(EpisodeRecord.ended_at >= since)
    q = q.order_by(EpisodeRecord.ended_at.desc(), EpisodeRecord.episode_id)  # a total order: pages never overlap
    return list(s.scalars(q.limit(limit).offset(offset)))


@dataclass(frozen=True)
class Rate:
    """Success rate over the episodes whose outcome is known (``unknown`` ones are not counted)."""

    episodes: int
    successes: int

    @property
    def rate(self) -> float | None:
        return self.successes / self.episodes if self.episodes else None


def success_rate(
    s: Session,
    version: str,
    *,
    robots: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Rate:
    """Known-outcome episodes of ``version`` (on ``robots``), ended in [``since``, ``until``]."""
    q = sa.select(
        sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((EpisodeRecord.success == "true", 1), else_=0)), 0)
    ).where(EpisodeRecord.policy_version == version, EpisodeRecord.success != "unknown")
    if robots is not None:
        q = q.where(EpisodeRecord.robot_id.in_(robots))
    if since is not None:
        q = q.where(EpisodeRecord.ended_at >= since)
    if until is not None:
        q = q.where(EpisodeRecord.ended_at <= until)
    n, k = s.execute(q).one()
    return Rate(episodes=int(n), successes=int(k))


def success_over_time(
    s: Session, *, bucket_s: float = 3600.0, since: datetime | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Per version, a list of ``{"t": bucket start (ISO), "episodes", "successes", "rate", "low", "high"}``
    (``low``/``high``: the rate's 95% Wilson interval), oldest first.

    Bucketing happens here rather than in SQL so SQLite and PostgreSQL agree to the second."""
    q = sa.select(EpisodeRecord.policy_version, EpisodeRecord.ended_at, EpisodeRecord.success).where(
        EpisodeRecord.success != "unknown"
    )
    if since is not None:
        q = q.where(EpisodeRecord.ended_at >= since)
    buckets: dict[str, dict[float, list[int]]] = {}
    for version, ended_at, success in s.execute(q):
        start = (ended_at.timestamp() // bucket_s) * bucket_s
        cell = buckets.setdefault(version, {}).setdefault(start, [0, 0])
        cell[0] += 1
        cell[1] += success == "true"
    out: dict[str, list[dict[str, Any]]] = {}
    for version, cells in buckets.items():
        out[version] = []
        for t, (n, k) in sorted(cells.items()):
            rate = wilson(k, n)
            out[version].append(
                {
                    "t": datetime.fromtimestamp(t, tz=UTC).isoformat(),
                    "episodes": n,
                    "successes": k,
                    "rate": rate.rate,
                    "low": rate.low,
                    "high": rate.high,
                }
            )
    return out
