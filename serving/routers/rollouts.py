"""Rollouts (all at once, or a canary first) and rollback, in one call each.

Robots learn the change on their next heartbeat (every second by default) and hot-swap at a chunk
boundary, so a rollback is in effect within seconds; the previous version is still loaded on the robot.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from data_store.registry import rollouts
from data_store.registry.models import Rollout
from serving.auth import Admin, Viewer
from serving.deps import RegistryDep
from serving.metrics import ROLLBACKS, ROLLOUTS
from serving.schemas import Offset, RobotState, RollbackIn, RollbackOut, RolloutIn, RolloutOut, RowId

router = APIRouter(tags=["rollouts"])


def rollout_out(s: Session, row: Rollout, running: dict[str, str | None] | None = None) -> RolloutOut:
    out = RolloutOut.model_validate(row)
    states = rollouts.robot_states(s, row, running)
    out.robot_states = {r: RobotState(**st) for r, st in states.items()}  # type: ignore[arg-type]
    if row.canary:
        rate = rollouts.canary_rate(s, row)
        out.canary_episodes, out.canary_successes = rate.episodes, rate.successes
        rate = rollouts.fleet_rate(s, row)
        out.fleet_episodes, out.fleet_successes = rate.episodes, rate.successes
        out.look_sizes = rollouts.plan_of(row).look_sizes()
    return out


@router.post("/rollouts", status_code=201, response_model=RolloutOut)
def start_rollout(registry: RegistryDep, caller: Admin, body: RolloutIn) -> RolloutOut:
    """Roll ``version`` out to ``robots`` (all registered robots when omitted). With ``canary`` = N, the
    first N robots move now; the rest follow once the canary robots do significantly better than the
    others over the same window (one-sided Fisher exact tests at ``looks`` looks up to ``max_episodes``
    canary episodes, 5% spent over the looks; and ``min_success_rate`` when given). Significantly worse,
    or no gain by the last look: the canary robots go back. The decision's figures are in ``reason``."""
    with registry.session() as s:
        row = rollouts.start_rollout(
            s,
            body.version,
            body.robots,
            by=caller.name,
            canary=body.canary,
            max_episodes=body.max_episodes,
            looks=body.looks,
            min_success_rate=body.min_success_rate,
        )
        ROLLOUTS.labels(kind="canary" if body.canary else "all").inc()
        return rollout_out(s, row)


@router.get("/rollouts", response_model=list[RolloutOut])
def list_rollouts(
    registry: RegistryDep, _: Viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Offset = 0
) -> list[RolloutOut]:
    with registry.session() as s:
        running = rollouts.running_versions(s)  # once, not once a rollout (the dashboard asks every 2 s)
        return [rollout_out(s, r, running) for r in rollouts.list_rollouts(s, limit=limit, offset=offset)]


@router.get("/rollouts/{rollout_id}", response_model=RolloutOut)
def get_rollout(registry: RegistryDep, _: Viewer, rollout_id: RowId) -> RolloutOut:
    with registry.session() as s:
        return rollout_out(s, rollouts.get_rollout(s, rollout_id))


@router.post("/rollouts/{rollout_id}/evaluate", response_model=RolloutOut)
def evaluate_rollout(registry: RegistryDep, caller: Admin, rollout_id: RowId) -> RolloutOut:
    """Judge a canary now (it is also judged on every episode a canary robot reports)."""
    with registry.session() as s:
        return rollout_out(s, rollouts.evaluate_rollout(s, rollouts.get_rollout(s, rollout_id), by=caller.name))


@router.post("/rollback", response_model=RollbackOut)
def rollback(registry: RegistryDep, caller: Admin, body: RollbackIn) -> RollbackOut:
    """Point robots (all when omitted) back at their previous version, or at ``to``."""
    with registry.session() as s:
        out = rollouts.rollback(s, body.robots, to=body.to, by=caller.name)
    ROLLBACKS.inc()
    return RollbackOut(**out)
