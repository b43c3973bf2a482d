"""The policy registry: versions, aliases, the audit log, robots, episode index, rollouts, runs, tokens.

SQLite by default, PostgreSQL by URL (SQLAlchemy 2). ``Registry`` holds the engine, a session factory
and the artifact store; the operations are functions of a ``Session`` in one module per resource
(``policies``, ``fleet``, ``rollouts``, ``runs``, ``tokens``, ``audit``)::

    reg = Registry("sqlite:///registry/registry.db", "registry/artifacts")
    with reg.session() as s:
        row, created = policies.register_policy(s, reg.artifacts, Path("out/policy"), by="trainer")
        policies.set_alias(s, FLEET, "candidate", row.version, by="trainer")
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from data_store.registry.artifacts import ArtifactError, ArtifactStore
from data_store.registry.db import make_engine
from data_store.registry.errors import Conflict, Invalid, NotFound, RegistryError
from data_store.registry.models import FLEET, robot_scope

__all__ = [
    "FLEET",
    "ArtifactError",
    "ArtifactStore",
    "Conflict",
    "Invalid",
    "NotFound",
    "Registry",
    "RegistryError",
    "robot_scope",
]


class Registry:
    """The registry's database and artifact store. Thread-safe: each ``session()`` is its own."""

    def __init__(self, url: str, artifacts: Path | str, *, schema: str | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, schema=schema)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.artifacts = ArtifactStore(artifacts)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on an exception."""
        with self.sessions.begin() as s:
            yield s

    def close(self) -> None:
        self.engine.dispose()
