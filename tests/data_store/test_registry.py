"""The policy registry against real SQLite and PostgreSQL: immutable versions, idempotent registration,
aliases, the audit log's two questions, canary rollouts, rollback, tokens."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from data_store.registry import (
    FLEET,
    Conflict,
    Invalid,
    NotFound,
    Registry,
    audit,
    fleet,
    policies,
    robot_scope,
    rollouts,
    runs,
    tokens,
)
from data_store.registry.db import drop_schema, utcnow
from data_store.registry.models import AuditEvent
from data_store.stats import fisher_greater
from tests.conftest import need
from vla.manifest import verify_artifact, write_manifest

PG_URL = os.environ.get("FLYWHEEL_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SPEC = {"action_dim": 4, "state_dim": 4, "action_low": [-1] * 4, "action_high": [1] * 4}


def _pg_reachable() -> bool:
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    if request.param == "sqlite":
        r = Registry(f"sqlite:///{tmp_path}/registry.db", tmp_path / "artifacts")
        yield r
        r.close()
        return
    need(_pg_reachable(), f"PostgreSQL at {PG_URL}")
    schema = f"test_registry_{uuid.uuid4().hex[:10]}"  # one schema per test: parallel runs do not collide
    r = Registry(PG_URL, tmp_path / "artifacts", schema=schema)
    try:
        yield r
    finally:
        r.close()
        drop_schema(PG_URL, schema)


def make_artifact(folder: Path, seed: int, *, parent: str | None = None, success: float = 0.5) -> Path:
    """An artifact in the vla format (manifest with sha256 of each file) with stand-in payload bytes:
    the registry never reads the weights."""
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(os.urandom(64) + seed.to_bytes(4, "little"))
    (folder / "config.json").write_text('{"format": "test"}')
    (folder / "norm_stats.json").write_text("{}")
    write_manifest(
        folder,
        parent_version=parent,
        training_run=f"run-{seed}",
        dataset_snapshot=None,
        metrics={"success_rate": success},
        robot_spec=SPEC,
        created_at="2026-01-01T00:00:00+00:00",
    )
    return folder


def register(reg: Registry, folder: Path, by: str = "alice") -> str:
    with reg.session() as s:
        row, _ = policies.register_policy(s, reg.artifacts, folder, by=by, verify=verify_artifact)
        return row.version


def test_register_is_immutable_and_idempotent(reg: Registry, tmp_path: Path) -> None:
    art = make_artifact(tmp_path / "a", 1, parent="vla-parent")
    with reg.session() as s:
        row, created = policies.register_policy(s, reg.artifacts, art, by="alice", verify=verify_artifact)
        assert created
        version, sha = row.version, row.sha256
    assert version.startswith("vla-")  # the manifest's content version names it
    with reg.session() as s:
        again, created = policies.register_policy(s, reg.artifacts, art, by="bob", verify=verify_artifact)
        assert not created and again.version == version and again.created_by == "alice"
        got = policies.get_policy(s, version)
        assert got.parent == "vla-parent" and got.training_run == "run-1"
        assert got.metrics == {"success_rate": 0.5} and got.action_dim == 4
        assert Path(got.artifact_path, "manifest.json").is_file() and got.sha256 == sha
        assert len(policies.list_policies(s)) == 1
        with pytest.raises(Invalid, match="names itself"):
            policies.register_policy(s, reg.artifacts, art, by="bob", version="other-name")


def test_tampered_artifact_is_refused_and_not_stored(reg: Registry, tmp_path: Path) -> None:
    art = make_artifact(tmp_path / "a", 2)
    (art / "norm_stats.json").write_text('{"tampered": true}')
    with reg.session() as s, pytest.raises(Invalid, match=r"norm_stats.json.*altered"):
        policies.register_policy(s, reg.artifacts, art, by="alice", verify=verify_artifact)
    with reg.session() as s:
        assert policies.list_policies(s) == []
    assert not any(p.is_dir() and not p.name.startswith(".") for p in reg.artifacts.root.iterdir())


def test_aliases_per_robot_and_fleet(reg: Registry, tmp_path: Path) -> None:
    v1, v2 = register(reg, make_artifact(tmp_path / "a", 1)), register(reg, make_artifact(tmp_path / "b", 2))
    with reg.session() as s:
        fleet.register_robot(s, "r1", SPEC, by="r1")
        assert policies.desired_version(s, "r1") is None
        policies.set_alias(s, FLEET, "production", v1, by="alice")
        policies.set_alias(s, FLEET, "candidate", v2, by="alice")
        assert policies.desired_version(s, "r1") == v1
        policies.set_alias(s, robot_scope("r1"), "production", v2, by="alice")
        assert policies.desired_version(s, "r1") == v2
        assert policies.resolve(s, "candidate").version == v2
        own = policies.get_alias(s, robot_scope("r1"), "production")
        assert own is not None and own.previous == v1  # inherited from the fleet
        with pytest.raises(NotFound):
            policies.set_alias(s, FLEET, "production", "vla-nope", by="alice")


def test_audit_answers_which_version_ran_when_and_who_rolled_out(reg: Registry, tmp_path: Path) -> None:
    v1, v2 = register(reg, make_artifact(tmp_path / "a", 1)), register(reg, make_artifact(tmp_path / "b", 2))
    t0 = utcnow()
    with reg.session() as s:
        fleet.register_robot(s, "r1", SPEC, by="r1")
        fleet.heartbeat(s, "r1", running_version=v1, health={"ok": True})
        rollouts.start_rollout(s, v2, ["r1"], by="carol")
        fleet.report_swap(s, "r1", version=v2, ok=True, at=t0 + timedelta(seconds=10))
        fleet.report_swap(s, "r1", version="vla-bad", ok=False, reason="NaN", at=t0 + timedelta(seconds=20))
    with reg.session() as s:
        assert audit.version_running_at(s, "r1", t0 - timedelta(seconds=5)) is None
        assert audit.version_running_at(s, "r1", t0 + timedelta(seconds=5)) == v1
        assert audit.version_running_at(s, "r1", t0 + timedelta(seconds=15)) == v2
        assert audit.version_running_at(s, "r1", t0 + timedelta(seconds=25)) == v2  # the refusal changed nothing
        who = audit.events(s, actions=("rollout",))
        assert [(e.actor, e.version) for e in who] == [("carol", v2)]
        refused = audit.events(s, robot_id="r1", actions=("swap_refused",))
        assert refused[0].detail["reason"] == "NaN"


def test_audit_log_is_append_only(reg: Registry, tmp_path: Path) -> None:
    register(reg, make_artifact(tmp_path / "a", 1))
    with reg.session() as s:
        event = s.scalars(sa.select(AuditEvent)).first()
        assert event is not None
        event.actor = "mallory"
        with pytest.raises(PermissionError, match="append-only"):
            s.flush()
        s.rollback()
    with reg.session() as s:
        event = s.scalars(sa.select(AuditEvent)).first()
        assert event is not None
        s.delete(event)
        with pytest.raises(PermissionError):
            s.flush()
        s.rollback()


def _episodes(
    reg: Registry, robot: str, version: str, outcomes: Sequence[bool | None], at: datetime | None = None
) -> None:
    """Index episodes (None: outcome unknown), one second apart from ``at`` (default now), each judged as
    the server judges it: right after it is indexed."""
    start = at or utcnow()
    with reg.session() as s:
        for i, ok in enumerate(outcomes):
            fleet.index_episode(
                s,
                episode_id=uuid.uuid4().hex,
                robot_id=robot,
                policy_version=version,
                task="drawer-close",
                success="unknown" if ok is None else "true" if ok else "false",
                length=50,
                ended_at=start + timedelta(seconds=i),
            )
            rollouts.evaluate_for_robot(s, robot)


@pytest.mark.parametrize("canary", ["better", "worse", "equal"])
def test_canary_is_judged_against_the_fleet_over_the_same_window(reg: Registry, tmp_path: Path, canary: str) -> None:
    v1, v2 = register(reg, make_artifact(tmp_path / "a", 1)), register(reg, make_artifact(tmp_path / "b", 2))
    robots = ["r1", "r2", "r3"]
    with reg.session() as s:
        for r in robots:
            fleet.register_robot(s, r, SPEC, by=r)
        rollouts.start_rollout(s, v1, None, by="carol")  # everyone, and the fleet alias
    _episodes(reg, "r2", v1, [True] * 20, at=utcnow() - timedelta(hours=1))  # before the window: not counted
    with reg.session() as s:
        ro = rollouts.start_rollout(s, v2, robots, canary=1, max_episodes=20, looks=2, by="carol")
        rollout_id, t0 = ro.id, ro.created_at
        assert (ro.min_episodes, ro.max_episodes, ro.looks) == (10, 20, 2)
        assert [policies.desired_version(s, r) for r in robots] == [v2, v1, v1]
    # The fleet in the window: 10 of 20 (r2 and r3 under v1), and 30 successes after the canary's
    # episodes ended (not in the window of its looks). Only r1 is a canary: r2 and r3 are never judged on.
    _episodes(reg, "r2", v1, [True, False] * 5, at=t0 + timedelta(seconds=1))
    _episodes(reg, "r3", v1, [False, True] * 5, at=t0 + timedelta(seconds=1))
    _episodes(reg, "r3", v1, [True] * 30, at=t0 + timedelta(hours=1))
    _episodes(reg, "r1", v1, [False] * 10, at=t0 + timedelta(seconds=30))  # the canary before its swap: not counted
    wins = {"better": [True] * 10, "worse": [False] * 10, "equal": [True, False] * 5}[canary]
    _episodes(reg, "r1", v2, [None, *wins[:9]], at=t0 + timedelta(seconds=40))  # 9 known outcomes: no look yet
    with reg.session() as s:
        assert rollouts.get_rollout(s, rollout_id).status == "canary"
    _episodes(reg, "r1", v2, wins[9:], at=t0 + timedelta(seconds=50))  # the 10th: look 1 of 2
    with reg.session() as s:
        ro = rollouts.get_rollout(s, rollout_id)
        p = fisher_greater(10, 10, 10, 20) if canary != "worse" else fisher_greater(10, 20, 0, 10)
        if canary == "better":  # 10/10 vs 10/20: p = 0.0062 <= 0.05 * (1/2)^2
            assert ro.status == "rolling_out", ro.reason  # promoted: the other robots are moving
            assert "canary 10/10 = 1.00 vs fleet 10/20 = 0.50" in (ro.reason or "")
            assert f"gain p = {p:.4g} <= 0.0125" in (ro.reason or "") and "alpha 0.05" in (ro.reason or "")
            assert [policies.desired_version(s, r) for r in robots] == [v2, v2, v2]
            assert audit.events(s, actions=("promote",))[0].detail["reason"] == ro.reason
            # complete only once every target robot runs the version, each robot's part on the way
            fleet.heartbeat(s, "r1", running_version=v2, health={})
            fleet.heartbeat(s, "r2", running_version=v2, health={})
            assert rollouts.note_running(s, "r2") == []
            assert {r: st["state"] for r, st in rollouts.robot_states(s, ro).items()} == {
                "r1": "running",
                "r2": "running",
                "r3": "pending",
            }
            fleet.heartbeat(s, "r3", running_version=v2, health={})
            assert rollouts.note_running(s, "r3") == [rollout_id] and ro.status == "complete"
        elif canary == "worse":  # 0/10 vs 10/20: harm p = 0.0062 <= 0.05 / 2
            assert ro.status == "halted" and "canary worse at look 1 of 2" in (ro.reason or "")
            assert "canary 0/10 = 0.00 vs fleet 10/20 = 0.50" in (ro.reason or "")
            assert f"harm p = {p:.4g} <= 0.025" in (ro.reason or "")
            assert [policies.desired_version(s, r) for r in robots] == [v1, v1, v1]
        else:
            assert ro.status == "canary" and ro.reason is None
    if canary != "equal":
        return
    _episodes(reg, "r1", v2, [True, False] * 5, at=t0 + timedelta(seconds=60))  # the 20th: the last look
    with reg.session() as s:
        ro = rollouts.get_rollout(s, rollout_id)
        assert ro.status == "halted"
        assert "no evidence of a gain by the last look 2 of 2 (20 canary episodes)" in (ro.reason or "")
        assert "canary 10/20 = 0.50 vs fleet 10/20 = 0.50" in (ro.reason or "")  # the 30 late ones not counted
        assert [policies.desired_version(s, r) for r in robots] == [v1, v1, v1]
        assert rollouts.fleet_rate(s, ro).episodes == 50  # all of them since the start, for the dashboard


def test_a_canary_needs_robots_to_compare_with(reg: Registry, tmp_path: Path) -> None:
    v1, v2 = register(reg, make_artifact(tmp_path / "a", 1)), register(reg, make_artifact(tmp_path / "b", 2))
    with reg.session() as s:
        with pytest.raises(Invalid, match=r"no robot has connected yet.*start the robots first"):
            rollouts.start_rollout(s, v2, None, canary=1, by="carol")
        for r in ("r1", "r2"):
            fleet.register_robot(s, r, SPEC, by=r)
        with pytest.raises(Invalid, match="run no other version"):  # nothing is in production yet
            rollouts.start_rollout(s, v2, ["r1", "r2"], canary=1, by="carol")
        rollouts.start_rollout(s, v1, None, by="carol")
        with pytest.raises(Invalid, match="leaves none on the current version"):
            rollouts.start_rollout(s, v2, ["r1", "r2"], canary=2, by="carol")
        with pytest.raises(Invalid, match="looks"):
            rollouts.start_rollout(s, v2, ["r1", "r2"], canary=1, max_episodes=3, looks=4, by="carol")
        ro = rollouts.start_rollout(s, v2, ["r1", "r2"], canary=1, min_success_rate=0.5, by="carol")
        assert (ro.max_episodes, ro.looks, ro.min_episodes, ro.min_success_rate) == (200, 5, 40, 0.5)


def test_an_older_registry_gets_the_new_columns(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:  # the rollouts table as the release before the canary plan made it
        conn.execute(sa.text(
            "CREATE TABLE rollouts (id INTEGER PRIMARY KEY, version VARCHAR(128) NOT NULL, robots JSON NOT NULL,"
            " canary JSON NOT NULL, previous JSON NOT NULL, status VARCHAR(16) NOT NULL, threshold FLOAT,"
            " min_episodes INTEGER NOT NULL, created_at DATETIME NOT NULL, created_by VARCHAR(128) NOT NULL,"
            " decided_at DATETIME, reason TEXT)"
        ))  # fmt: skip
        conn.execute(sa.text(
            "INSERT INTO rollouts VALUES (1, 'vla-old', '[\"r1\"]', '[]', '{}', 'complete', NULL, 5,"
            " '2026-01-01 00:00:00', 'carol', NULL, 'all at once')"
        ))  # fmt: skip
    engine.dispose()
    reg = Registry(f"sqlite:///{db}", tmp_path / "artifacts")
    try:
        with reg.session() as s:
            old = rollouts.get_rollout(s, 1)
            assert (old.version, old.max_episodes, old.looks, old.min_success_rate) == ("vla-old", None, None, None)
    finally:
        reg.close()


def test_rollback_to_previous_and_named(reg: Registry, tmp_path: Path) -> None:
    v1, v2, v3 = (register(reg, make_artifact(tmp_path / n, i)) for i, n in enumerate("abc"))
    with reg.session() as s:
        for r in ("r1", "r2"):
            fleet.register_robot(s, r, SPEC, by=r)
        with pytest.raises(Invalid, match="nothing to roll back"):
            rollouts.rollback(s, by="carol")
        rollouts.start_rollout(s, v1, None, by="carol")
        rollouts.start_rollout(s, v2, ["r1", "r2"], by="carol")
        out = rollouts.rollback(s, by="dave")
        assert out["moved"] == {robot_scope("r1"): v1, robot_scope("r2"): v1}
        assert FLEET in out["skipped"]  # the fleet alias only ever pointed at v1
        assert [policies.desired_version(s, r) for r in ("r1", "r2")] == [v1, v1]
        # the v2 rollout was undone; v1 never ran anywhere before v2 went out to its robots: superseded
        assert [r.status for r in rollouts.list_rollouts(s)] == ["rolled_back", "superseded"]
        rollouts.rollback(s, ["r2"], to=v3, by="dave")
        assert [policies.desired_version(s, r) for r in ("r1", "r2")] == [v1, v3]
        assert rollouts.list_rollouts(s)[0].status == "rolled_back"
        with pytest.raises(NotFound):
            rollouts.rollback(s, ["r9"], by="dave")
        who = audit.events(s, actions=("rollback",))
        assert [e.actor for e in who] == ["dave", "dave"]


def test_success_over_time_per_version(reg: Registry, tmp_path: Path) -> None:
    v1 = register(reg, make_artifact(tmp_path / "a", 1))
    with reg.session() as s:
        fleet.register_robot(s, "r1", SPEC, by="r1")
    _episodes(reg, "r1", v1, [True, False, True, True])
    with reg.session() as s:
        series = fleet.success_over_time(s, bucket_s=86400)
        assert sum(p["episodes"] for p in series[v1]) == 4
        assert sum(p["successes"] for p in series[v1]) == 3
        rate = fleet.success_rate(s, v1)
        assert (rate.episodes, rate.successes) == (4, 3)


def test_training_runs_and_tokens(reg: Registry) -> None:
    with reg.session() as s:
        run = runs.request_run(s, {"task": "drawer-close"}, by="alice")
        runs.update_run(s, run.id, status="running", stage="world_model", progress=0.4)
        with pytest.raises(Invalid):
            runs.update_run(s, run.id, progress=1.5)
        token, row = tokens.create_token(s, "operator", name="robot r1")
        assert token not in row.token_sha256 and len(row.token_sha256) == 64
    with reg.session() as s:
        assert runs.get_run(s, run.id).progress == pytest.approx(0.4)
        found = tokens.authenticate(s, token)
        assert found is not None and found.role == "operator"
        assert tokens.authenticate(s, token + "x") is None
        tokens.revoke_token(s, found.id)
        assert tokens.authenticate(s, token) is None
        assert tokens.role_allows("admin", "operator") and not tokens.role_allows("viewer", "operator")
        with pytest.raises(Invalid):
            tokens.create_token(s, "root")


def test_same_artifact_registered_concurrently_gives_one_version(reg: Registry, tmp_path: Path) -> None:
    import threading

    art = make_artifact(tmp_path / "a", 7)
    versions: list[str] = []
    errors: list[BaseException] = []

    start = threading.Barrier(4)

    def go() -> None:
        try:
            start.wait()  # all four at once, so their reads and writes interleave
            versions.append(register(reg, art))
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with reg.session() as s:
        count = len(policies.list_policies(s))
    if reg.engine.dialect.name == "sqlite":  # SQLite serialises writers: every call must succeed
        assert not errors, errors
    assert count == 1 and len(set(versions)) == 1 and versions


def test_a_version_name_cannot_be_reused_for_other_content(reg: Registry, tmp_path: Path) -> None:
    plain = []  # artifacts whose manifest names no version: the caller names them
    for i in range(2):
        folder = tmp_path / f"p{i}"
        folder.mkdir()
        (folder / "manifest.json").write_text(f'{{"files": {{}}, "n": {i}}}')
        plain.append(folder)
    with reg.session() as s:
        row, _ = policies.register_policy(s, reg.artifacts, plain[0], by="x", version="v-same")
        assert row.version == "v-same"
        with pytest.raises(Conflict, match="immutable"):
            policies.register_policy(s, reg.artifacts, plain[1], by="x", version="v-same")
        unnamed, _ = policies.register_policy(s, reg.artifacts, plain[1], by="x")
        assert unnamed.version == f"v{unnamed.id}"


@pytest.mark.postgres
def test_server_and_trainer_settings_open_one_registry_on_a_postgresql_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One environment (``FLYWHEEL_REGISTRY_URL`` + ``FLYWHEEL_REGISTRY_SCHEMA``): what the trainer writes (a run's
    row, as its mirror does) is what the server reads. The trainer once ignored the schema and wrote elsewhere."""
    pytest.importorskip("trainer.service.settings", reason="the trainer service (another package) is not here")
    from serving.settings import Settings
    from trainer.service.settings import ServiceSettings

    need(_pg_reachable(), f"PostgreSQL at {PG_URL}")
    schema = f"test_settings_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("FLYWHEEL_REGISTRY_URL", PG_URL)
    monkeypatch.setenv("FLYWHEEL_REGISTRY_SCHEMA", schema)
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", str(tmp_path))
    trainer, server = ServiceSettings().open_registry(), Settings().open_registry()
    try:
        with trainer.session() as s:
            runs.mirror_run(s, "20261207-000000-abcdef", params={}, by="trainer (cli)", create=True, status="running")
        with server.session() as s:
            assert [r.external_id for r in runs.list_runs(s)] == ["20261207-000000-abcdef"]
            assert server.engine.dialect.name == "postgresql"
    finally:
        trainer.close()
        server.close()
        drop_schema(PG_URL, schema)
