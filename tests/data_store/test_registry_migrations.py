"""Registry schema migrations (Alembic): a registry made by the previous release upgrades in place, nothing lost,
on SQLite and PostgreSQL; so does one made before migrations existed (no ``alembic_version``, older columns)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from data_store.registry import Registry, policies, rollouts
from data_store.registry.db import MIGRATIONS, drop_schema, head_revision
from tests.conftest import need
from tests.data_store.test_registry import PG_URL, _pg_reachable


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/old.db", None
        return
    need(_pg_reachable(), f"PostgreSQL at {PG_URL}")
    schema = f"test_migrate_{uuid.uuid4().hex[:10]}"
    try:
        yield PG_URL, schema
    finally:
        drop_schema(PG_URL, schema)


def make_old_registry(url: str, schema: str | None, *, stamped: bool, drop_columns: tuple[str, ...] = ()) -> None:
    """A registry as the release of 2026-12-01 left it (revision 0001), with a policy, a rollout and a token in it.
    Not ``stamped``: as that release wrote it, before migrations (no ``alembic_version``); ``drop_columns``
    (table.column) takes away columns an even older release did not have yet."""
    engine = sa.create_engine(url)
    if schema:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        engine = engine.execution_options(schema_translate_map={None: schema})
    prefix = f'"{schema}".' if schema else ""
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes.update(connection=conn, schema=schema)
        command.upgrade(config, "0001")
        if not stamped:
            conn.execute(sa.text(f"DROP TABLE {prefix}alembic_version"))
        conn.execute(
            sa.text(
                f"INSERT INTO {prefix}policy_versions (version, sha256, artifact_path, manifest, metrics, created_at,"
                " created_by) VALUES ('v-old', :sha, '/a/v-old', :m, '{}', :now, 'alice')"
            ),
            {"sha": "a" * 64, "m": json.dumps({"version": "v-old"}), "now": now},
        )
        conn.execute(
            sa.text(
                f"INSERT INTO {prefix}rollouts (version, robots, canary, previous, status, min_episodes, created_at,"
                " created_by, reason) VALUES ('v-old', '[\"r1\"]', '[]', '{}', 'complete', 0, :now, 'alice', 'x')"
            ),
            {"now": now},
        )
        for column in drop_columns:
            table, name = column.split(".")
            conn.execute(sa.text(f"ALTER TABLE {prefix}{table} DROP COLUMN {name}"))
    engine.dispose()


@pytest.mark.parametrize(
    ("stamped", "drop_columns"),
    [(True, ()), (False, ()), (False, ("api_tokens.bound_to", "rollouts.looks"))],
    ids=["previous-release", "before-migrations", "older-still"],
)
def test_an_older_registry_upgrades_in_place(
    database: tuple[str, str | None], tmp_path: Path, stamped: bool, drop_columns: tuple[str, ...]
) -> None:
    url, schema = database
    make_old_registry(url, schema, stamped=stamped, drop_columns=drop_columns)
    registry = Registry(url, tmp_path / "artifacts", schema=schema)
    try:
        with registry.engine.connect() as conn:
            table = f'"{schema}".alembic_version' if schema else "alembic_version"
            assert conn.execute(sa.text(f"SELECT version_num FROM {table}")).scalar() == head_revision()
        with registry.session() as s:  # nothing lost, and the new column is there and works
            (row,) = rollouts.list_rollouts(s)
            assert (row.version, row.status, row.reason, row.outcomes) == ("v-old", "complete", "x", None)
            row.outcomes = {"r1": {"state": "refused", "reason": "probe"}}
        with registry.session() as s:
            assert rollouts.list_rollouts(s)[0].outcomes == {"r1": {"state": "refused", "reason": "probe"}}
            assert [p.version for p in policies.list_policies(s)] == ["v-old"]
    finally:
        registry.close()
    again = Registry(url, tmp_path / "artifacts", schema=schema)  # opening an up-to-date registry changes nothing
    again.close()
