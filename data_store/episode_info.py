"""What the store knows about one episode without reading its frames: ``EpisodeInfo``.

The source of truth is the attributes of the episode's Zarr group (docs/architecture.md, "Contracts", Episode);
the catalog is an index of these records that can be rebuilt from the groups alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from data_store.schema import SCHEMA_VERSION, EpisodeStatus, RobotSpec, SuccessLabel

STATUSES: tuple[str, ...] = ("recording", "complete", "aborted")
SUCCESS_LABELS: tuple[str, ...] = ("true", "false", "unknown")


def success_label(success: bool | str | None) -> SuccessLabel:
    """``True``/``False``/``None`` (or the label itself) -> ``"true"``/``"false"``/``"unknown"``."""
    if success is None or success == "unknown":
        return "unknown"
    if success is True or success == "true":
        return "true"
    if success is False or success == "false":
        return "false"
    raise ValueError(f"success: expected true, false or unknown, got {success!r}")


@dataclass(frozen=True)
class EpisodeInfo:
    """One episode's attributes. Times are UTC seconds since the epoch; ``length`` counts published steps."""

    episode_id: str
    task: str
    instruction: str
    robot_id: str
    policy_version: str
    status: EpisodeStatus
    success: SuccessLabel
    length: int
    fps: float
    started_at: float
    ended_at: float | None
    reason: str | None
    spec: RobotSpec
    meta: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def started(self) -> datetime:
        return datetime.fromtimestamp(self.started_at, tz=UTC)

    @property
    def duration_s(self) -> float:
        """Recorded duration at the episode's fps (steps / fps)."""
        return self.length / self.fps if self.fps > 0 else 0.0

    def to_attrs(self) -> dict[str, Any]:
        """The JSON attributes stored on the episode's Zarr group."""
        return {
            "episode_id": self.episode_id,
            "task": self.task,
            "instruction": self.instruction,
            "robot_id": self.robot_id,
            "policy_version": self.policy_version,
            "status": self.status,
            "success": self.success,
            "length": self.length,
            "fps": self.fps,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "reason": self.reason,
            "spec": self.spec.to_json(),
            "meta": self.meta,
            "schema_version": self.schema_version,
        }

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> EpisodeInfo:
        return cls(
            episode_id=str(attrs["episode_id"]),
            task=str(attrs["task"]),
            instruction=str(attrs["instruction"]),
            robot_id=str(attrs["robot_id"]),
            policy_version=str(attrs["policy_version"]),
            status=attrs["status"],
            success=success_label(attrs["success"]),
            length=int(attrs["length"]),
            fps=float(attrs["fps"]),
            started_at=float(attrs["started_at"]),
            ended_at=None if attrs.get("ended_at") is None else float(attrs["ended_at"]),
            reason=attrs.get("reason"),
            spec=RobotSpec.from_json(attrs["spec"]),
            meta=dict(attrs.get("meta") or {}),
            schema_version=int(attrs.get("schema_version", SCHEMA_VERSION)),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_attrs(), sort_keys=True)
