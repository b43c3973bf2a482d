"""The episode catalog: an SQLite index over the episodes' Zarr attributes, for listing and filtering.

It is a cache, never the source of truth: every row is a copy of one episode group's attributes, so
``EpisodeStore.rebuild_catalog()`` can drop it and rebuild it from the store alone. The file lives in the
store root (``catalog.sqlite``) in WAL mode, so a recorder and the CLI can use it from two processes.
Stdlib ``sqlite3``: one table, a handful of indexed columns, and the full attributes as JSON.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from data_store.episode_info import EpisodeInfo, success_label

CATALOG_FILE = "catalog.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS episodes (
    episode_id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    robot_id TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    status TEXT NOT NULL,
    success TEXT NOT NULL,
    length INTEGER NOT NULL,
    started_at REAL NOT NULL,
    attrs TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS episodes_task ON episodes (task);
CREATE INDEX IF NOT EXISTS episodes_started ON episodes (started_at);
"""


def _seconds(t: float | datetime | None) -> float | None:
    """A time bound in epoch seconds. A datetime holds microseconds, so an episode's start time turned into
    one can round up past the float ``started_at``; its bound moves one microsecond earlier, or the episode
    would fall outside a range that starts at its own start time."""
    if t is None:
        return None
    return t.timestamp() - 1e-6 if isinstance(t, datetime) else float(t)


class Catalog:
    """``episodes`` table in ``<store root>/catalog.sqlite``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A short-lived connection per call: safe across threads and processes, and nothing to close.
        db = sqlite3.connect(self.path, timeout=30.0)
        try:
            with db:  # commits, or rolls back on an exception
                yield db
        finally:
            db.close()

    def upsert(self, info: EpisodeInfo) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO episodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _row(info),
            )

    def replace_all(self, infos: Iterable[EpisodeInfo]) -> int:
        """Drop every row and insert ``infos`` in one transaction (a rebuild). Returns the row count."""
        rows = [_row(i) for i in infos]
        with self._connect() as db:
            db.execute("DELETE FROM episodes")
            db.executemany("INSERT INTO episodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return len(rows)

    def remove(self, episode_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM episodes WHERE episode_id = ?", (episode_id,))

    def get(self, episode_id: str) -> EpisodeInfo | None:
        with self._connect() as db:
            row = db.execute("SELECT attrs FROM episodes WHERE episode_id = ?", (episode_id,)).fetchone()
        return None if row is None else EpisodeInfo.from_attrs(json.loads(row[0]))

    def ids(self) -> set[str]:
        with self._connect() as db:
            return {r[0] for r in db.execute("SELECT episode_id FROM episodes")}

    def query(
        self,
        *,
        task: str | Iterable[str] | None = None,
        success: bool | str | None = None,
        policy_version: str | None = None,
        robot_id: str | None = None,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        status: str | Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[EpisodeInfo]:
        """Episodes matching every given filter, oldest first. ``success=None`` means any label;
        pass ``"unknown"`` for unlabelled episodes. ``since``/``until`` bound ``started_at`` (inclusive/exclusive)."""
        where: list[str] = []
        args: list[object] = []

        def one_of(column: str, value: str | Iterable[str]) -> None:
            values = [value] if isinstance(value, str) else list(value)
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            args.extend(values)

        if task is not None:
            one_of("task", task)
        if status is not None:
            one_of("status", status)
        if success is not None:
            where.append("success = ?")
            args.append(success_label(success))
        if policy_version is not None:
            where.append("policy_version = ?")
            args.append(policy_version)
        if robot_id is not None:
            where.append("robot_id = ?")
            args.append(robot_id)
        if (t := _seconds(since)) is not None:
            where.append("started_at >= ?")
            args.append(t)
        if (t := _seconds(until)) is not None:
            where.append("started_at < ?")
            args.append(t)
        sql = "SELECT attrs FROM episodes"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at, episode_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._connect() as db:
            return [EpisodeInfo.from_attrs(json.loads(r[0])) for r in db.execute(sql, args)]


def _row(info: EpisodeInfo) -> tuple[object, ...]:
    return (
        info.episode_id,
        info.task,
        info.robot_id,
        info.policy_version,
        info.status,
        info.success,
        info.length,
        info.started_at,
        info.to_json(),
    )
