"""Policy versions and aliases.

A version is immutable: registering an artifact copies it into the artifact store under its digest and
writes one row; registering the same artifact again returns that row (idempotent). Aliases are the
mutable part: ``production``/``candidate``/any name, for the fleet or for one robot. A robot's
*desired* version is its own ``production`` alias, else the fleet's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from data_store.registry import audit
from data_store.registry.artifacts import ArtifactStore, artifact_digest, read_manifest
from data_store.registry.db import utcnow
from data_store.registry.errors import Conflict, Invalid, NotFound
from data_store.registry.models import FLEET, Alias, PolicyVersion, robot_scope

PRODUCTION = "production"
Verify = Callable[[Path], object]  # raises with a reason when an artifact folder is not sound


def register_policy(
    s: Session,
    store: ArtifactStore,
    src: Path,
    *,
    by: str,
    version: str | None = None,
    verify: Verify | None = None,
) -> tuple[PolicyVersion, bool]:
    """Register the artifact folder ``src``; returns (version row, created?).

    ``verify`` (``vla.artifact.verify_artifact`` in the server) runs first, before anything is looked up or
    stored: a tampered artifact is refused even when it names a version that exists. The same content again
    is idempotent; a version name that already names other content is a conflict (versions are immutable).
    The manifest's ``parent``, ``training_run`` and ``metrics`` are copied into the row for queries."""
    if verify is not None:
        try:
            verify(src)
        except Exception as e:
            raise Invalid(f"artifact refused: {e}") from e
    digest = artifact_digest(src)
    manifest = read_manifest(src)
    # A content-derived version in the manifest (``vla-<hash>``) is the version's name, so the registry
    # and the policy itself (``policy.version``) agree; else ``version``, else ``v<row id>``.
    named = _str_or_none(manifest.get("version"))
    if named is not None and version is not None and version != named:
        raise Invalid(f"the artifact names itself {named!r}; it cannot be registered as {version!r}")
    version = named or version
    # One query for both clashes: two separate reads can straddle a concurrent registration of this very
    # artifact (no row by digest, then a row by name), which read as a conflict although it is the same content.
    clash = PolicyVersion.sha256 == digest
    if version is not None:
        clash = sa.or_(clash, PolicyVersion.version == version)
    found = list(s.scalars(sa.select(PolicyVersion).where(clash)))
    for other in found:
        if other.sha256 == digest:
            if version is not None and version != other.version:
                raise Conflict(f"this artifact is already registered as {other.version!r}, not {version!r}")
            return other, False  # the same content: idempotent
    if found:
        raise Conflict(f"version {version!r} already names a different artifact (versions are immutable)")
    digest, stored = store.add_dir(src)
    row = PolicyVersion(
        version=version or f"pending-{digest}",
        sha256=digest,
        artifact_path=str(stored),
        manifest=manifest,
        parent=_str_or_none(manifest.get("parent_version") or manifest.get("parent")),
        training_run=_str_or_none(manifest.get("training_run")),
        metrics=manifest.get("metrics") if isinstance(manifest.get("metrics"), dict) else {},
        action_dim=_action_dim(manifest),
        created_by=by,
    )
    try:
        with s.begin_nested():
            s.add(row)
            s.flush()
            if version is None:
                row.version = f"v{row.id}"
                s.flush()
    except IntegrityError:  # a concurrent registration of the same artifact won
        s.expire_all()
        winner = s.scalar(
            sa.select(PolicyVersion).where(sa.or_(PolicyVersion.sha256 == digest, PolicyVersion.version == row.version))
        )
        if winner is None:
            raise
        return winner, False
    audit.record(s, "register", actor=by, version=row.version, sha256=digest, parent=row.parent)
    return row, True


def get_policy(s: Session, version: str) -> PolicyVersion:
    row = s.scalar(sa.select(PolicyVersion).where(PolicyVersion.version == version))
    if row is None:
        raise NotFound(f"no policy version {version!r}")
    return row


def list_policies(s: Session, *, limit: int = 500, offset: int = 0) -> list[PolicyVersion]:
    return list(s.scalars(sa.select(PolicyVersion).order_by(PolicyVersion.id.desc()).limit(limit).offset(offset)))


def get_alias(s: Session, scope: str, name: str) -> Alias | None:
    return s.scalar(sa.select(Alias).where(Alias.scope == scope, Alias.name == name))


def list_aliases(s: Session, scope: str | None = None) -> list[Alias]:
    q = sa.select(Alias).order_by(Alias.scope, Alias.name)
    if scope is not None:
        q = q.where(Alias.scope == scope)
    return list(s.scalars(q))


def set_alias(s: Session, scope: str, name: str, version: str, *, by: str, why: str = "") -> Alias:
    """Point ``scope``/``name`` at ``version`` (a version, or a fleet alias naming one); the old target becomes
    ``previous``."""
    version = resolve(s, version).version
    row = get_alias(s, scope, name)
    if row is None:
        # A robot's first own alias: what it followed until now (the fleet's) is its previous version.
        inherited = get_alias(s, FLEET, name) if scope != FLEET else None
        previous = inherited.version if inherited is not None and inherited.version != version else None
        row = Alias(scope=scope, name=name, version=version, previous=previous, set_by=by)
        s.add(row)
    elif row.version != version:
        row.previous, row.version, row.set_by = row.version, version, by
        row.set_at = utcnow()
    s.flush()
    audit.record(s, "alias", actor=by, version=version, robot_id=_robot_of(scope), scope=scope, name=name, why=why)
    return row


def drop_alias(s: Session, scope: str, name: str, *, by: str, why: str = "") -> None:
    row = get_alias(s, scope, name)
    if row is not None:
        s.delete(row)
        s.flush()
        audit.record(s, "alias", actor=by, version=None, robot_id=_robot_of(scope), scope=scope, name=name, why=why)


def desired_version(s: Session, robot_id: str) -> str | None:
    """What ``robot_id`` should run: its own ``production`` alias, else the fleet's, else None."""
    for scope in (robot_scope(robot_id), FLEET):
        row = get_alias(s, scope, PRODUCTION)
        if row is not None:
            return row.version
    return None


def resolve(s: Session, ref: str, *, robot_id: str | None = None) -> PolicyVersion:
    """A version by its name, or by an alias name (the robot's own first, then the fleet's)."""
    row = s.scalar(sa.select(PolicyVersion).where(PolicyVersion.version == ref))
    if row is not None:
        return row
    scopes = ([robot_scope(robot_id)] if robot_id else []) + [FLEET]
    for scope in scopes:
        alias = get_alias(s, scope, ref)
        if alias is not None:
            return get_policy(s, alias.version)
    raise NotFound(f"no policy version or alias {ref!r}")


def _robot_of(scope: str) -> str | None:
    return scope.removeprefix("robot:") if scope.startswith("robot:") else None


def _str_or_none(v: object) -> str | None:
    return None if v is None or v == "" else str(v)


def _action_dim(manifest: dict[str, object]) -> int | None:
    spec = manifest.get("robot_spec")
    value = spec.get("action_dim") if isinstance(spec, dict) else None
    return value if isinstance(value, int) else None
