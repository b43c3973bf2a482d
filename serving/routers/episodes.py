"""The episode index robots push (the frames stay in their Zarr stores), labels, success rate over time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi import Path as Path_

from data_store.registry import fleet, rollouts
from serving.auth import Operator, RobotOperator, Viewer
from serving.deps import RegistryDep
from serving.schemas import EpisodeIn, EpisodeOut, LabelIn, Offset, RatePoint

router = APIRouter(tags=["episodes"])


@router.post("/episodes", status_code=201, response_model=EpisodeOut)
def index_episode(registry: RegistryDep, caller: RobotOperator, body: EpisodeIn) -> EpisodeOut:
    """Index a finished episode; a canary rollout this robot is part of is judged right after."""
    caller.check_robot(body.robot_id)
    with registry.session() as s:
        row = fleet.index_episode(s, **body.model_dump())
        out = EpisodeOut.model_validate(row)
    with registry.session() as s:  # its own transaction: a canary decision never loses the episode
        rollouts.evaluate_for_robot(s, body.robot_id)
    return out


@router.get("/episodes", response_model=list[EpisodeOut])
def list_episodes(
    registry: RegistryDep,
    _: Viewer,
    robot_id: Annotated[str | None, Query(max_length=128)] = None,
    policy_version: Annotated[str | None, Query(max_length=128)] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
    offset: Offset = 0,
) -> list[EpisodeOut]:
    with registry.session() as s:
        rows = fleet.list_episodes(
            s, robot_id=robot_id, policy_version=policy_version, since=since, limit=limit, offset=offset
        )
        return [EpisodeOut.model_validate(r) for r in rows]


@router.post("/episodes/{episode_id}/label", response_model=EpisodeOut)
def label_episode(
    registry: RegistryDep,
    caller: Operator,
    episode_id: Annotated[str, Path_(max_length=128)],
    body: LabelIn,
) -> EpisodeOut:
    """An operator's success label, where the robot cannot tell."""
    with registry.session() as s:
        return EpisodeOut.model_validate(fleet.label_episode(s, episode_id, body.success, by=caller.name))


@router.get("/stats/success-rate", response_model=dict[str, list[RatePoint]])
def success_rate_over_time(
    registry: RegistryDep,
    _: Viewer,
    bucket_s: Annotated[float, Query(ge=1.0, le=30 * 86400.0)] = 3600.0,
    since: datetime | None = None,
) -> dict[str, list[RatePoint]]:
    """Per policy version, the success rate of known-outcome episodes in each time bucket, oldest first."""
    with registry.session() as s:
        series = fleet.success_over_time(s, bucket_s=bucket_s, since=since)
    return {v: [RatePoint(**p) for p in points] for v, points in series.items()}
