"""The registry's database: an engine for SQLite (default) or PostgreSQL (by URL), and the ORM base.

Times are stored as naive UTC and read back as aware UTC (``UTCDateTime``), so SQLite and
PostgreSQL give the same answers. A PostgreSQL ``schema`` puts every table in that schema (created
if missing): several registries (and test runs) can share one database without colliding.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
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
    """An engine for ``url`` with the registry's tables created or upgraded to the newest revision (``upgrade``).

    ``sqlite:///path.db`` (the folder is created), ``sqlite://`` (in memory, one shared connection) or
    ``postgresql+psycopg://user@host:5432/db``; ``schema`` (PostgreSQL only) isolates the tables."""
    kwargs: dict[str, Any] = {}
    sqlite_file: Path | None = None
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            sqlite_file = Path(path)
            sqlite_file.parent.mkdir(parents=True, exist_ok=True)
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
    upgrade(engine, schema, sqlite_file)
    return engine


MIGRATIONS = Path(__file__).parent / "migrations"
BEFORE_MIGRATIONS = "0001"  # the revision a registry made before migrations existed is at
_LOCK_KEY = 0x464C5957  # PostgreSQL advisory lock: one process migrates a database at a time


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory(str(MIGRATIONS)).get_current_head())


def upgrade(engine: Engine, schema: str | None = None, sqlite_path: Path | None = None) -> str:
    """Bring the registry's tables to the newest revision (Alembic, ``migrations/``), in place, nothing lost: an
    empty database gets every table; one made by an older release gets its revisions; one made before migrations
    existed is first brought to the first revision and stamped there. One process at a time (a file lock beside a
    SQLite database, an advisory lock on PostgreSQL). Returns the revision it is at."""
    from alembic import command
    from alembic.config import Config

    from data_store.registry import models  # noqa: F401  (registers the tables on Base.metadata)

    head = _head()
    with contextlib.ExitStack() as stack:
        if sqlite_path is not None:
            stack.enter_context(_file_lock(sqlite_path.with_name(sqlite_path.name + ".migrate.lock")))
        conn = stack.enter_context(engine.begin())
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        inspector = sa.inspect(conn)
        if inspector.has_table("alembic_version", schema=schema):
            at = conn.execute(sa.text(f"SELECT version_num FROM {_qualified(engine, schema, 'alembic_version')}"))
            if at.scalar() == head:
                return head
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes.update(connection=conn, schema=schema)
        ours = {t.name for t in Base.metadata.sorted_tables}
        if ours & set(inspector.get_table_names(schema=schema)) and not inspector.has_table(
            "alembic_version", schema=schema
        ):
            _catch_up(conn, schema)  # a registry from before migrations: the tables and columns it lacked, then stamp
            command.stamp(config, BEFORE_MIGRATIONS)
        command.upgrade(config, "head")
    return head


@functools.cache
def _head() -> str:
    return head_revision()


def _qualified(engine: Engine, schema: str | None, table: str) -> str:
    quote = engine.dialect.identifier_preparer.quote
    return f"{quote(schema)}.{quote(table)}" if schema else quote(table)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _catch_up(conn: sa.Connection, schema: str | None) -> None:
    """A registry made before migrations existed: make the tables it lacks and add the nullable columns its tables
    lack (those releases only ever added tables and nullable columns), so that it has the first revision's schema
    at least. A later revision that adds a column checks that it is not there yet."""
    Base.metadata.create_all(conn)  # the missing tables only
    inspector = sa.inspect(conn)
    for table in Base.metadata.sorted_tables:
        have = {c["name"] for c in inspector.get_columns(table.name, schema=schema)}
        for column in table.columns:
            if column.name in have:
                continue
            if not column.nullable:
                raise RuntimeError(f"registry table {table.name} lacks column {column.name}, which cannot be added")
            ddl = f"ALTER TABLE {_qualified(conn.engine, schema, table.name)} ADD COLUMN "
            conn.execute(sa.text(ddl + f"{conn.dialect.identifier_preparer.quote(column.name)} "
                                 f"{column.type.compile(conn.dialect)}"))  # fmt: skip


def drop_schema(url: str, schema: str) -> None:
    """Remove a PostgreSQL schema and everything in it (test cleanup)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()
