"""Rollouts (all at once, or a canary on N robots first) and rollbacks.

A rollout points each target robot's ``production`` alias at the new version; robots pick that up on
their next heartbeat and hot-swap. With a canary, only the first N robots move; the rest follow when
the canary holds: once the canary robots have reported ``min_episodes`` episodes (known outcome) under
the new version since the rollout began, their success rate is compared with the threshold:

- ``min_success_rate`` when given;
- otherwise the rate those robots had under the version they ran before, minus ``tolerance``
  (0.1 by default: a canary of a handful of episodes is noisy); 0 when there is no baseline.

If it holds, the rest of the robots move (``promote``); if not, the canary robots go back to the
version they were meant to run before (``halt``). A rollback points robots back at the previous (or a
named) version in one call; robots swap on their next heartbeat (seconds: the previous version is
still loaded on the robot).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from data_store.registry import audit, fleet, policies
from data_store.registry.db import utcnow
from data_store.registry.errors import Invalid, NotFound
from data_store.registry.models import FLEET, Alias, Rollout, robot_scope
from data_store.registry.policies import PRODUCTION

ACTIVE = "canary"


def start_rollout(
    s: Session,
    version: str,
    robots: list[str] | None,
    *,
    by: str,
    canary: int = 0,
    min_success_rate: float | None = None,
    tolerance: float = 0.1,
    min_episodes: int = 5,
) -> Rollout:
    """Roll ``version`` out to ``robots`` (None: every registered robot, and the fleet alias, so robots
    that join later run it too). ``canary`` > 0 moves only that many robots first."""
    policies.get_policy(s, version)
    fleet_wide = robots is None
    targets = [r.robot_id for r in fleet.list_robots(s)] if robots is None else list(dict.fromkeys(robots))
    for robot_id in targets:
        fleet.get_robot(s, robot_id)
    if canary < 0 or canary > len(targets):
        raise Invalid(f"canary: expected 0..{len(targets)} robots, got {canary}")
    if canary and min_episodes < 1:
        raise Invalid("min_episodes: a canary needs at least 1 episode to judge")
    previous = {r: policies.desired_version(s, r) for r in targets}
    first = targets[:canary] if canary else targets
    threshold = min_success_rate
    if canary and threshold is None:
        baseline = _baseline(s, first, previous)
        threshold = max(0.0, baseline - tolerance) if baseline is not None else 0.0
    row = Rollout(
        version=version,
        robots=targets,
        canary=targets[:canary],
        previous=previous,
        status=ACTIVE if canary else "complete",
        threshold=threshold,
        min_episodes=min_episodes,
        created_by=by,
        reason=None if canary else "all at once",
    )
    s.add(row)
    s.flush()
    why = f"rollout {row.id}"
    for robot_id in first:
        policies.set_alias(s, robot_scope(robot_id), PRODUCTION, version, by=by, why=why)
    if fleet_wide and not canary:
        policies.set_alias(s, FLEET, PRODUCTION, version, by=by, why=why)
    audit.record(s, "rollout", actor=by, version=version, rollout=row.id, robots=targets, canary=row.canary)
    return row


def get_rollout(s: Session, rollout_id: int) -> Rollout:
    row = s.get(Rollout, rollout_id)
    if row is None:
        raise NotFound(f"no rollout {rollout_id}")
    return row


def list_rollouts(s: Session, *, limit: int = 100) -> list[Rollout]:
    return list(s.scalars(sa.select(Rollout).order_by(Rollout.id.desc()).limit(limit)))


def canary_rate(s: Session, row: Rollout) -> fleet.Rate:
    return fleet.success_rate(s, row.version, robots=row.canary, since=row.created_at)


def evaluate_rollout(s: Session, row: Rollout, *, by: str = "canary-check") -> Rollout:
    """Promote or halt a canary rollout once enough canary episodes are in; otherwise leave it."""
    if row.status != ACTIVE:
        return row
    rate = canary_rate(s, row)
    if rate.episodes < row.min_episodes or rate.rate is None:
        return row
    threshold = row.threshold or 0.0
    row.decided_at = utcnow()
    why = f"rollout {row.id}"
    if rate.rate >= threshold:
        row.status = "complete"
        row.reason = f"canary held: {rate.successes}/{rate.episodes} = {rate.rate:.2f} >= {threshold:.2f}"
        for robot_id in row.robots[len(row.canary) :]:
            policies.set_alias(s, robot_scope(robot_id), PRODUCTION, row.version, by=by, why=why)
        audit.record(s, "promote", actor=by, version=row.version, rollout=row.id, reason=row.reason)
    else:
        row.status = "halted"
        row.reason = f"canary failed: {rate.successes}/{rate.episodes} = {rate.rate:.2f} < {threshold:.2f}"
        for robot_id in row.canary:
            _restore(s, robot_id, row.previous.get(robot_id), by=by, why=why)
        audit.record(s, "halt", actor=by, version=row.version, rollout=row.id, reason=row.reason)
    s.flush()
    return row


def evaluate_for_robot(s: Session, robot_id: str) -> list[Rollout]:
    """Evaluate the active canary rollouts that ``robot_id`` is a canary of (called on each episode)."""
    active = s.scalars(sa.select(Rollout).where(Rollout.status == ACTIVE)).all()
    return [evaluate_rollout(s, r) for r in active if robot_id in r.canary]


def rollback(s: Session, robots: list[str] | None = None, *, to: str | None = None, by: str) -> dict[str, Any]:
    """Point robots back at their previous version (or at ``to``). ``robots`` None: every robot that
    has its own ``production`` alias, and the fleet alias. Returns ``{scope: version}`` and what was
    skipped (a scope with no previous version) with the reason."""
    if to is not None:
        policies.get_policy(s, to)
    if robots is None:
        scopes = list(s.scalars(sa.select(Alias.scope).where(Alias.name == PRODUCTION)))
    else:
        scopes = [robot_scope(fleet.get_robot(s, robot_id).robot_id) for robot_id in robots]
    moved: dict[str, str] = {}
    was: dict[str, str] = {}  # what each moved scope ran before
    skipped: dict[str, str] = {}
    for scope in scopes:
        # A robot without its own alias follows the fleet's: roll back from that, and pin the robot.
        current = policies.get_alias(s, scope, PRODUCTION) or policies.get_alias(s, FLEET, PRODUCTION)
        target = to or (current.previous if current else None)
        if current is None or target is None:
            ran = f" (it only ever had {current.version})" if current else ""
            skipped[scope] = f"{scope} has no previous production version{ran}"
            continue
        was[scope] = current.version
        policies.set_alias(s, scope, PRODUCTION, target, by=by, why="rollback")
        moved[scope] = target
    if not moved:
        raise Invalid("nothing to roll back: " + ("; ".join(skipped.values()) or "no production aliases"))
    undone = []  # the rollouts whose version was running where it was rolled back from
    for row in s.scalars(sa.select(Rollout).where(Rollout.status.in_((ACTIVE, "complete")))):
        scopes_of_row = {robot_scope(r) for r in row.robots} | {FLEET}
        if any(was.get(sc) == row.version and moved[sc] != row.version for sc in scopes_of_row):
            row.status, row.decided_at, row.reason = "rolled_back", utcnow(), f"rolled back by {by}"
            undone.append(row.id)
    audit.record(s, "rollback", actor=by, version=to, moved=moved, skipped=skipped, rollouts=undone)
    return {"moved": moved, "skipped": skipped, "rollouts": undone}


def _baseline(s: Session, robots: list[str], previous: dict[str, str | None]) -> float | None:
    versions = {v for r, v in previous.items() if r in robots and v}
    n = k = 0
    for version in versions:
        rate = fleet.success_rate(s, version, robots=robots)
        n, k = n + rate.episodes, k + rate.successes
    return k / n if n else None


def _restore(s: Session, robot_id: str, version: str | None, *, by: str, why: str) -> None:
    if version is None:
        policies.drop_alias(s, robot_scope(robot_id), PRODUCTION, by=by, why=why)
    else:
        policies.set_alias(s, robot_scope(robot_id), PRODUCTION, version, by=by, why=why)
