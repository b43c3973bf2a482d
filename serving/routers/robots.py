"""Robots: register, heartbeat (running version and health in; desired version out), swap reports,
and the audit log's "which version ran on robot R at time T"."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi import Path as Path_
from sqlalchemy.orm import Session

from data_store.registry import Invalid, audit, fleet, policies, rollouts
from data_store.registry.db import utcnow
from data_store.registry.models import Robot
from data_store.schema import RobotSpec, SchemaError
from serving.auth import RobotOperator, Viewer
from serving.deps import RegistryDep, SettingsDep
from serving.metrics import SWAPS
from serving.schemas import AuditOut, Desired, HeartbeatIn, Offset, RobotIn, RobotOut, RunningAt, SwapIn

router = APIRouter(tags=["robots"])
RobotId = Annotated[str, Path_(pattern=r"^[A-Za-z0-9_.:@-]{1,128}$")]


def robot_out(s: Session, row: Robot, stale_s: float) -> RobotOut:
    out = RobotOut.model_validate(row)
    out.desired_version = policies.desired_version(s, row.robot_id)
    out.stale = row.last_seen is None or (utcnow() - row.last_seen).total_seconds() > stale_s
    return out


def desired(s: Session, robot_id: str) -> Desired:
    version = policies.desired_version(s, robot_id)
    sha = policies.get_policy(s, version).sha256 if version else None
    return Desired(robot_id=robot_id, version=version, sha256=sha)


@router.post("/robots", status_code=201, response_model=RobotOut)
def register_robot(registry: RegistryDep, settings: SettingsDep, caller: RobotOperator, body: RobotIn) -> RobotOut:
    """Register a robot (or update its spec). ``spec`` is ``RobotSpec.to_json()``."""
    caller.check_robot(body.robot_id)
    try:
        RobotSpec.from_json(body.spec)
    except (SchemaError, KeyError, TypeError, ValueError) as e:
        raise Invalid(f"spec: not a RobotSpec ({type(e).__name__}: {e})") from None
    with registry.session() as s:
        return robot_out(
            s, fleet.register_robot(s, body.robot_id, body.spec, by=caller.name), settings.heartbeat_stale_s
        )


@router.get("/robots", response_model=list[RobotOut])
def list_robots(registry: RegistryDep, settings: SettingsDep, _: Viewer) -> list[RobotOut]:
    with registry.session() as s:
        return [robot_out(s, r, settings.heartbeat_stale_s) for r in fleet.list_robots(s)]


@router.get("/robots/{robot_id}", response_model=RobotOut)
def get_robot(registry: RegistryDep, settings: SettingsDep, _: Viewer, robot_id: RobotId) -> RobotOut:
    with registry.session() as s:
        return robot_out(s, fleet.get_robot(s, robot_id), settings.heartbeat_stale_s)


@router.post("/robots/{robot_id}/heartbeat", response_model=Desired)
def heartbeat(registry: RegistryDep, caller: RobotOperator, robot_id: RobotId, body: HeartbeatIn) -> Desired:
    """The robot is alive and runs ``running_version``; the answer is the version it should run."""
    caller.check_robot(robot_id)
    with registry.session() as s:
        fleet.heartbeat(
            s,
            robot_id,
            running_version=body.running_version,
            health=body.health,
            last_episode_id=body.last_episode_id,
        )
        rollouts.note_running(s, robot_id)  # a rollout is complete once every target robot runs its version
        return desired(s, robot_id)


@router.get("/robots/{robot_id}/desired", response_model=Desired)
def desired_version(registry: RegistryDep, _: Viewer, robot_id: RobotId) -> Desired:
    with registry.session() as s:
        fleet.get_robot(s, robot_id)
        return desired(s, robot_id)


@router.post("/robots/{robot_id}/swaps", status_code=201, response_model=AuditOut)
def report_swap(registry: RegistryDep, caller: RobotOperator, robot_id: RobotId, body: SwapIn) -> AuditOut:
    """A swap took effect on the robot (``ok``) or was refused (``reason`` says why)."""
    caller.check_robot(robot_id)
    with registry.session() as s:
        event = fleet.report_swap(
            s, robot_id, version=body.version, ok=body.ok, reason=body.reason, at=body.at, detail=body.detail
        )
        SWAPS.labels(outcome="taken" if body.ok else "refused").inc()
        if not body.ok:  # the rollout that sent it there is not done: it is refused, and the robot goes back
            rollouts.record_refusal(s, robot_id, body.version, body.reason)
        else:
            rollouts.note_running(s, robot_id)
        return AuditOut.model_validate(event)


@router.get("/robots/{robot_id}/running", response_model=RunningAt)
def running_at(
    registry: RegistryDep, _: Viewer, robot_id: RobotId, at: Annotated[datetime | None, Query()] = None
) -> RunningAt:
    """Which version robot ``robot_id`` ran at time ``at`` (now when omitted), from its swap reports."""
    when = at or utcnow()
    if when.tzinfo is None:  # a time without an offset is UTC, as everywhere in the API
        when = when.replace(tzinfo=UTC)
    with registry.session() as s:
        fleet.get_robot(s, robot_id)
        return RunningAt(robot_id=robot_id, at=when, version=audit.version_running_at(s, robot_id, when))


@router.get("/audit", response_model=list[AuditOut])
def audit_log(
    registry: RegistryDep,
    _: Viewer,
    robot_id: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[list[str] | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
    offset: Offset = 0,
) -> list[AuditOut]:
    """The audit log, newest first: who registered, rolled out and rolled back what, when; swaps."""
    with registry.session() as s:
        actions = tuple(action) if action else None
        found = audit.events(s, robot_id=robot_id, actions=actions, limit=limit, offset=offset)
        return [AuditOut.model_validate(e) for e in found]
