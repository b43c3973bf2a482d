"""The server on PostgreSQL (its own schema, dropped afterwards): register, roll out, heartbeat, swap
report, canary, rollback, audit — the same API as on SQLite."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from data_store.registry.db import drop_schema
from tests.conftest import need
from tests.serving.serving_helpers import SIM_SPEC, Server, start_server, upload

PG_URL = os.environ.get("FLYWHEEL_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
pytestmark = pytest.mark.postgres


def _reachable() -> bool:
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


@contextmanager
def postgres_server(data_dir: Path, prefix: str) -> Iterator[Server]:
    """A server on PostgreSQL, in a schema of its own that is dropped afterwards (needs PostgreSQL at PG_URL)."""
    need(_reachable(), f"PostgreSQL at {PG_URL}")
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    server = start_server(data_dir, registry_url=PG_URL, schema=schema)
    try:
        yield server
    finally:
        server.stop()
        drop_schema(PG_URL, schema)


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with postgres_server(tmp_path_factory.mktemp("pg"), "test_serving") as server:
        yield server


def test_rollout_canary_rollback_on_postgres(pg_server: Server, artifacts: dict[str, Path]) -> None:
    server = pg_server
    with server.client(server.admin) as admin, server.client(server.operator) as op:
        assert "postgres" in server.env["FLYWHEEL_REGISTRY_URL"]
        v1, v2 = (upload(admin, artifacts[k]).json()["policy"]["version"] for k in ("v1", "v2"))
        assert not upload(admin, artifacts["v1"]).json()["created"]  # idempotent on PostgreSQL too
        for robot in ("pg-1", "pg-2"):
            assert op.post("/robots", json={"robot_id": robot, "spec": SIM_SPEC.to_json()}).status_code == 201
        admin.post("/rollouts", json={"version": v1})
        assert op.post("/robots/pg-1/heartbeat", json={"running_version": v1}).json()["version"] == v1
        body = {"version": v2, "robots": ["pg-1", "pg-2"], "canary": 1, "max_episodes": 4, "looks": 1,
                "min_success_rate": 0.5}  # fmt: skip
        rollout = admin.post("/rollouts", json=body).json()
        # the fleet (pg-2 on v1) fails 4 of 4, the canary (pg-1 on v2) succeeds 4 of 4: p = 1/70 <= 0.05
        for i, (robot, version, ok) in enumerate([("pg-2", v1, "false")] * 4 + [("pg-1", v2, "true")] * 4):
            op.post(
                "/episodes",
                json={"episode_id": f"pg-ep-{i}", "robot_id": robot, "policy_version": version, "task": "drawer-close",
                      "success": ok, "length": 10, "ended_at": datetime.now(UTC).isoformat()},
            )  # fmt: skip
        got = admin.get(f"/rollouts/{rollout['id']}").json()
        assert got["status"] == "rolling_out" and "canary 4/4 = 1.00 vs fleet 0/4 = 0.00" in got["reason"], got
        assert op.get("/robots/pg-2/desired").json()["version"] == v2
        assert op.post("/robots/pg-1/swaps", json={"version": v2, "ok": True}).status_code == 201
        assert op.post("/robots/pg-2/heartbeat", json={"running_version": v2}).status_code == 200
        assert admin.get(f"/rollouts/{rollout['id']}").json()["status"] == "complete"
        moved = admin.post("/rollback", json={}).json()["moved"]
        assert moved == {"robot:pg-1": v1, "robot:pg-2": v1}  # the fleet alias only ever had v1
        assert {op.get(f"/robots/{r}/desired").json()["version"] for r in ("pg-1", "pg-2")} == {v1}
        assert admin.get("/robots/pg-1/running").json()["version"] == v2
        assert [e["action"] for e in admin.get("/audit", params={"action": ["rollback"]}).json()] == ["rollback"]
