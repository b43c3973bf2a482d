"""Request and response bodies (pydantic). Every body is validated; unknown fields are refused."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from data_store.registry.rollouts import LOOKS, MAX_EPISODES

Name = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$")
# Row ids in URLs: the databases' integer columns (PostgreSQL's INTEGER is 32-bit); outside, 422 rather than 500.
RowId = Annotated[int, Path(ge=1, le=2**31 - 1, description="A row id.")]
# Lists are newest first and pages of ``limit``: the next page is ``offset + limit``.
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Skip this many, newest first (the next page).")]
_TEXT_CONTROLS = {chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"} | {"\x7f"}


def _check_values(value: Any, where: str) -> None:
    """No control characters but tab, newline and carriage return in any string (PostgreSQL refuses NUL in
    text), no integer outside 64 bits (no column holds one), however deep in lists and maps."""
    if isinstance(value, str):
        if any(c in _TEXT_CONTROLS for c in value):
            raise ValueError(f"{where}: control characters are not allowed")
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{where}: {value} is out of range")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_values(key, where)
            _check_values(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_values(item, f"{where}[{i}]")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_control_characters(cls, data: Any) -> Any:
        _check_values(data, "body")
        return data


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# policies
class RegisterFromPath(Body):
    path: str = Field(min_length=1, max_length=4096, description="An artifact folder on the server's disk.")
    version: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$")


class PolicyOut(Out):
    version: str
    sha256: str
    parent: str | None
    training_run: str | None
    metrics: dict[str, Any]
    action_dim: int | None
    created_at: datetime
    created_by: str
    manifest: dict[str, Any]


class RegisteredOut(BaseModel):
    policy: PolicyOut
    created: bool


class AliasIn(Body):
    version: str = Name
    why: str = Field(default="", max_length=500)


class AliasOut(Out):
    scope: str
    name: str
    version: str
    previous: str | None
    set_at: datetime
    set_by: str


# rollouts
class RolloutIn(Body):
    version: str = Name
    robots: list[str] | None = Field(
        default=None, max_length=10_000, description="Robot ids; omitted: every robot and the fleet alias."
    )
    canary: int = Field(
        default=0,
        ge=0,
        description="Move this many robots first; the rest follow only if the canary robots do significantly "
        "better than the others over the same window (one-sided Fisher exact tests at `looks` looks).",
    )
    max_episodes: int = Field(
        default=MAX_EPISODES,
        ge=1,
        le=100_000,
        description="Canary episodes by the last look; a canary without a significant gain by then is halted.",
    )
    looks: int = Field(default=LOOKS, ge=1, le=100, description="Equally spaced looks up to `max_episodes`.")
    min_success_rate: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Also needed to promote: the canary's own rate at least this."
    )


class ErrorOut(BaseModel):
    """Every error the server answers: a short code and a sentence for a person; a validation error adds ``detail``
    (one entry per field), and some add what they refer to (a refused run's ``run``)."""

    model_config = ConfigDict(extra="allow")
    error: str = Field(description="unauthorized | forbidden | not_found | conflict | too_large | invalid_request")
    reason: str
    detail: list[dict[str, Any]] | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": what}
    for code, what in (
        (401, "No valid API token"),
        (403, "The token's role or binding does not allow this"),
        (404, "No such version, alias, robot, rollout, episode or run"),
        (409, "A version name that already names other content"),
        (413, "The request body is over the server's limit"),
        (422, "An invalid request, or one the registry refuses (the reason says why)"),
    )
}


class RobotState(BaseModel):
    state: Literal["running", "pending", "waiting", "kept", "refused", "rolled_back"]
    reason: str | None = None


class RolloutOut(Out):
    id: int
    version: str
    robots: list[str]
    canary: list[str]
    previous: dict[str, Any]
    status: str
    min_success_rate: float | None
    min_episodes: int = Field(description="Canary episodes at the first look (0: not a canary).")
    max_episodes: int | None
    looks: int | None
    created_at: datetime
    created_by: str
    decided_at: datetime | None
    reason: str | None
    canary_episodes: int = Field(default=0, description="The canary robots under the version, since the start.")
    canary_successes: int = 0
    fleet_episodes: int = Field(default=0, description="The other robots under their version, since the start.")
    fleet_successes: int = 0
    look_sizes: list[int] = Field(default_factory=list, description="Canary episodes at each look.")
    robot_states: dict[str, RobotState] = Field(
        default_factory=dict, description="Each target robot's part: running, pending, waiting, kept, refused, ..."
    )


class RollbackIn(Body):
    robots: list[str] | None = Field(default=None, max_length=10_000)
    to: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$")


class RollbackOut(BaseModel):
    moved: dict[str, str]
    skipped: dict[str, str]
    rollouts: list[int]


# robots
class RobotIn(Body):
    robot_id: str = Name
    spec: dict[str, Any] = Field(description="RobotSpec.to_json(): action_dim, state_dim, action_low/high, cameras.")


class HeartbeatIn(Body):
    running_version: str | None = Field(default=None, max_length=128)
    health: dict[str, Any] = Field(default_factory=dict)
    last_episode_id: str | None = Field(default=None, max_length=128)


class Desired(BaseModel):
    robot_id: str
    version: str | None
    sha256: str | None


class SwapIn(Body):
    version: str = Name
    ok: bool
    reason: str = Field(default="", max_length=2000)
    at: datetime | None = Field(default=None, description="When the swap took effect on the robot (UTC).")
    detail: dict[str, Any] = Field(default_factory=dict)


class RobotOut(Out):
    robot_id: str
    spec: dict[str, Any]
    registered_at: datetime
    last_seen: datetime | None
    running_version: str | None
    health: dict[str, Any]
    last_episode_id: str | None
    desired_version: str | None = None
    stale: bool = True


class AuditOut(Out):
    id: int
    at: datetime
    actor: str
    action: str
    robot_id: str | None
    version: str | None
    detail: dict[str, Any]


class RunningAt(BaseModel):
    robot_id: str
    at: datetime
    version: str | None


# episodes
class EpisodeIn(Body):
    episode_id: str = Name
    robot_id: str = Name
    policy_version: str = Field(min_length=1, max_length=128)
    task: str = Field(min_length=1, max_length=128)
    success: Literal["true", "false", "unknown"]
    length: int = Field(ge=0, le=10_000_000)
    started_at: datetime | None = None
    ended_at: datetime
    reason: str | None = Field(default=None, max_length=2000)


class EpisodeOut(Out):
    episode_id: str
    robot_id: str
    policy_version: str
    task: str
    success: str
    length: int
    started_at: datetime | None
    ended_at: datetime
    reason: str | None
    labeled_by: str | None


class LabelIn(Body):
    success: bool


class RatePoint(BaseModel):
    t: datetime = Field(description="Start of the time bucket (UTC).")
    episodes: int = Field(description="Episodes with a known outcome in the bucket.")
    successes: int
    rate: float
    low: float = Field(description="Lower end of the 95% Wilson interval of the rate.")
    high: float = Field(description="Upper end of the 95% Wilson interval of the rate.")


# training runs
class RunIn(Body):
    policy: str = Field(default="", max_length=4096, description="Policy to improve: a version, alias or folder.")
    task: str | None = Field(default=None, max_length=128)
    recipe: str = Field(
        default="default",
        max_length=64,
        pattern=r"^[a-z0-9_-]+$",
        description="The cycle's recipe (trainer/recipe.py RECIPES: default, quick): the settings the "
        "benchmarks measure.",
    )
    sim_task: str | None = Field(default=None, max_length=128)
    sim_episodes: int = Field(default=0, ge=0, le=10_000)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class RunUpdate(Body):
    status: Literal["requested", "running", "succeeded", "failed", "unavailable"] | None = None
    stage: str | None = Field(default=None, max_length=64)
    progress: float | None = Field(default=None, ge=0.0, le=1.0)
    result: dict[str, Any] | None = None
    reason: str | None = Field(default=None, max_length=2000)


class RunOut(Out):
    id: int
    status: str
    params: dict[str, Any]
    requested_at: datetime
    requested_by: str
    updated_at: datetime
    stage: str | None
    progress: float
    result: dict[str, Any]
    reason: str | None
    external_id: str | None


class WhoAmI(BaseModel):
    name: str
    role: str
