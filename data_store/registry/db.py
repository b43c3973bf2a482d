"""The registry's database: an engine for SQLite (default) or PostgreSQL (by URL), and the ORM base.

Times are stored as naive UTC and read back as aware UTC (``UTCDateTime``), so SQLite and
PostgreSQL give the same answers. A PostgreSQL ``schema`` puts every table in that schema (created
if missing): several registries (and test runs) can share one database without colliding.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import StaticPool


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that goes in as any aware datetime (naive: UTC) and comes out as aware UTC."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # a naive time (a query parameter without an offset) is taken as UTC
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: sa.JSON, list[str]: sa.JSON}


def make_engine(url: str, *, schema: str | None = None) -> Engine:
    """An engine for ``url`` with the registry's tables created.

    ``sqlite:///path.db`` (the folder is created), ``sqlite://`` (in memory, one shared connection) or
    ``postgresql+psycopg://user@host:5432/db``; ``schema`` (PostgreSQL only) isolates the tables."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs["poolclass"] = StaticPool
    else:  # the server answers from a thread pool (40 threads): let a burst have connections
        kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        # WAL lets readers (the dashboard) run while a robot's report is being written.
        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit survives a crash of the process, not a power cut (the last few may
            # be lost then); FULL would fsync every heartbeat.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    if schema:
        if engine.dialect.name != "postgresql":
            raise ValueError(f"a schema ({schema!r}) needs PostgreSQL, not {engine.dialect.name}")
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        engine = engine.execution_options(schema_translate_map={None: schema})
    from data_store.registry import models  # noqa: F401  (registers the tables on Base.metadata)

    Base.metadata.create_all(engine)
    _add_new_columns(engine, schema)
    return engine


def _add_new_columns(engine: Engine, schema: str | None) -> None:
    """Bring a registry made by an older release up to date: add the nullable columns its tables lack
    (``create_all`` makes missing tables only). The registry has no other kind of schema change."""
    inspector = sa.inspect(engine)
    quote = engine.dialect.identifier_preparer.quote
    for table in Base.metadata.sorted_tables:
        have = {c["name"] for c in inspector.get_columns(table.name, schema=schema)}
        for column in table.columns:
            if column.name in have:
                continue
            if not column.nullable:
                raise RuntimeError(f"registry table {table.name} lacks column {column.name}, which cannot be added")
            name = f"{quote(schema)}.{quote(table.name)}" if schema else quote(table.name)
            ddl = f"ALTER TABLE {name} ADD COLUMN {quote(column.name)} {column.type.compile(engine.dialect)}"
            with engine.begin() as conn:
                conn.execute(sa.text(ddl))


def drop_schema(url: str, schema: str) -> None:
    """Remove a PostgreSQL schema and everything in it (test cleanup)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()
