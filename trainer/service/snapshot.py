"""The dataset half of the idempotency key: which complete episodes a cycle trains on.

A snapshot is the sorted list of (episode id, length) of the complete episodes that match the
cycle's task, and a sha256 over it. Two cycles on the same episodes with the same config share one
key, so the second finds the first one's work done. Episodes still recording are left out (their
length is still growing); an episode labelled later does not change the snapshot, since the
label is read again when a stage opens the episode.

The snapshot is also where the run fails fast on bad input, before a GPU minute is spent: no
episodes, episodes whose action space differs from the policy's, a policy artifact that is missing.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_store.settings import FlywheelSettings
from trainer.service.stage import CycleConfig, StageError


@dataclass(frozen=True)
class Snapshot:
    digest: str  # sha256 of "id:length" lines
    episodes: tuple[tuple[str, int], ...]  # (episode_id, length), sorted by id
    store: str
    task: str | None
    action_dim: int
    taken_at: float

    @property
    def episode_ids(self) -> list[str]:
        return [e for e, _ in self.episodes]

    @property
    def steps(self) -> int:
        return sum(n for _, n in self.episodes)

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "episodes": [list(e) for e in self.episodes],
            "store": self.store,
            "task": self.task,
            "action_dim": self.action_dim,
            "taken_at": self.taken_at,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Snapshot:
        return cls(
            digest=d["digest"],
            episodes=tuple((str(e), int(n)) for e, n in d["episodes"]),
            store=d["store"],
            task=d["task"],
            action_dim=int(d["action_dim"]),
            taken_at=float(d["taken_at"]),
        )


def content_hash(episodes: list[tuple[str, int]]) -> str:
    lines = "\n".join(f"{e}:{n}" for e, n in sorted(episodes))
    return hashlib.sha256(lines.encode()).hexdigest()


def idempotency_key(snapshot: Snapshot, config: CycleConfig) -> str:
    """(dataset snapshot, config hash) -> the folder name of the cycle's work; 24 hex digits."""
    return hashlib.sha256(f"{snapshot.digest}:{config.digest()}".encode()).hexdigest()[:24]


def policy_action_dim(policy: str) -> int:
    """The action dimension of a policy artifact, checked against its manifest (sha256 of every file).

    StageError when the artifact is missing, altered, or names no action space."""
    from vla.manifest import ArtifactError, verify_artifact

    if not policy:
        raise StageError("no policy to improve: pass --policy PATH (a policy artifact directory)")
    path = Path(policy).expanduser()
    if not path.is_dir():
        raise StageError(f"missing policy artifact: {path} is not a directory")
    try:
        verify_artifact(path)
        config = json.loads((path / "config.json").read_text())
    except (ArtifactError, OSError, ValueError) as e:
        raise StageError(f"policy artifact {path}: {e}") from e
    spec = config.get("robot_spec") or {}
    dim = spec.get("action_dim", (config.get("model") or {}).get("action_dim"))
    if not isinstance(dim, int):
        raise StageError(f"policy artifact {path}: config.json names no action_dim")
    return dim


def resolve_policy(policy: str, settings: FlywheelSettings) -> str:
    """A policy artifact folder: ``policy`` itself when it is one, else the registry's version or alias of
    that name (``production``, ``candidate``, ``vla-…``), so a nightly cycle can improve what the fleet runs.
    The run keeps the resolved folder (content-addressed in the artifact store), not the moving alias."""
    if not policy or Path(policy).expanduser().is_dir() or "/" in policy:
        return policy
    from data_store.registry import RegistryError, policies

    registry = settings.open_registry()
    try:
        with registry.session() as s:
            return str(policies.resolve(s, policy).artifact_path)
    except RegistryError as e:
        raise StageError(f"missing policy artifact: {policy!r} is neither a folder nor in the registry ({e})") from e
    finally:
        registry.close()


def take_snapshot(store_path: str, config: CycleConfig) -> Snapshot:
    """Freeze the complete episodes of ``config.task`` in the store and check them against the policy."""
    from data_store.episodes import EpisodeStore

    action_dim = policy_action_dim(config.policy)
    if not Path(store_path).exists():
        raise StageError(f"empty dataset: the episode store {store_path} does not exist")
    infos = EpisodeStore(store_path).episodes(task=config.task, status="complete")
    infos = [i for i in infos if i.length > 0]
    if not infos:
        what = f"task {config.task!r}" if config.task else "any task"
        raise StageError(f"empty dataset: no complete episodes of {what} in {store_path}")
    wrong = [i for i in infos if i.spec.action_dim != action_dim]
    if wrong:
        ids = ", ".join(i.episode_id for i in wrong[:3]) + (" ..." if len(wrong) > 3 else "")
        raise StageError(
            f"action space mismatch: {len(wrong)} episode(s) have action_dim {wrong[0].spec.action_dim}, "
            f"the policy {config.policy} has {action_dim} ({ids})"
        )
    episodes = sorted((i.episode_id, int(i.length)) for i in infos)
    return Snapshot(
        digest=content_hash(episodes),
        episodes=tuple(episodes),
        store=store_path,
        task=config.task,
        action_dim=action_dim,
        taken_at=time.time(),
    )
