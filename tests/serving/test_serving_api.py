"""The REST API against a real uvicorn server process and a real SQLite registry."""

from __future__ import annotations

import io
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from data_store.stats import wilson
from tests.serving.serving_helpers import SIM_SPEC, Server, start_server, upload
from vla.manifest import read_manifest


def _robot(c: httpx.Client, robot_id: str) -> None:
    r = c.post("/robots", json={"robot_id": robot_id, "spec": SIM_SPEC.to_json()})
    assert r.status_code == 201, r.text


def _episode(c: httpx.Client, robot_id: str, version: str, ok: bool, at: datetime | None = None) -> None:
    r = c.post(
        "/episodes",
        json={
            "episode_id": f"{robot_id}-{version}-{datetime.now(UTC).timestamp()}-{ok}",
            "robot_id": robot_id,
            "policy_version": version,
            "task": "drawer-close",
            "success": "true" if ok else "false",
            "length": 40,
            "ended_at": (at or datetime.now(UTC)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text


def test_register_by_upload_is_idempotent_and_downloadable(server: Server, artifacts: dict[str, Path]) -> None:
    with server.client(server.admin) as admin, server.client(server.viewer) as viewer:
        first = upload(admin, artifacts["v1"])
        assert first.status_code == 201, first.text
        again = upload(admin, artifacts["v1"])
        assert first.json()["created"] and not again.json()["created"]
        version = first.json()["policy"]["version"]
        assert again.json()["policy"]["version"] == version == read_manifest(artifacts["v1"])["version"]
        assert first.json()["policy"]["metrics"] == {"success_rate": 0.5}
        got = viewer.get(f"/policies/{version}").json()
        assert got["sha256"] == first.json()["policy"]["sha256"]
        dl = viewer.get(f"/policies/{version}/download")
        assert dl.status_code == 200 and dl.headers["x-artifact-sha256"] == got["sha256"]
        with tarfile.open(fileobj=io.BytesIO(dl.content)) as tar:
            assert sorted(tar.getnames()) == ["config.json", "manifest.json", "model.safetensors", "norm_stats.json"]
        assert version in [p["version"] for p in viewer.get("/policies").json()]
        by_path = admin.post("/policies/from-path", json={"path": str(artifacts["v2"])})
        assert by_path.status_code == 201 and by_path.json()["policy"]["parent"] == version


def test_tampered_upload_is_refused_with_reason(server: Server, artifacts: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in artifacts["v3"].iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "config.json").write_text((bad / "config.json").read_text().replace('"hidden": 32', '"hidden": 33'))
    with server.client(server.admin) as admin:
        r = upload(admin, bad)
        assert r.status_code == 422
        assert r.json()["error"] == "invalid_request" and "config.json" in r.json()["reason"]
        evil = io.BytesIO()
        with tarfile.open(fileobj=evil, mode="w:gz") as tar:
            info = tarfile.TarInfo("../escape.txt")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
        r = admin.post("/policies", files={"file": ("e.tar.gz", evil.getvalue(), "application/gzip")})
        assert r.status_code == 422 and "escapes" in r.json()["reason"]
        r = admin.post("/policies", files={"file": ("x.tar.gz", b"not a tarball", "application/gzip")})
        assert r.status_code == 422 and "tarball" in r.json()["reason"]


def test_auth_roles(server: Server, artifacts: dict[str, Path]) -> None:
    with server.client(None) as anon, server.client("fw_wrong") as wrong:
        for c in (anon, wrong):
            r = c.get("/policies")
            assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    with server.client(server.viewer) as viewer, server.client(server.operator) as operator:
        assert viewer.get("/policies").status_code == 200
        r = viewer.post("/robots", json={"robot_id": "x", "spec": SIM_SPEC.to_json()})
        assert r.status_code == 403 and "operator" in r.json()["reason"]
        assert operator.post("/robots", json={"robot_id": "auth-r", "spec": SIM_SPEC.to_json()}).status_code == 201
        r = upload(operator, artifacts["v1"])
        assert r.status_code == 403 and "admin" in r.json()["reason"]
        r = operator.post("/rollback", json={})
        assert r.status_code == 403
        assert viewer.get("/whoami").json() == {"name": "test-viewer", "role": "viewer"}


def test_errors_are_json_with_a_reason(server: Server) -> None:
    with server.client(server.admin) as admin:
        r = admin.post("/rollouts", json={"version": "vla-doesnotexist"})
        assert r.status_code == 404 and "vla-doesnotexist" in r.json()["reason"]
        r = admin.post("/rollouts", json={"version": 3, "canary": -1})
        assert r.status_code == 422 and r.json()["error"] == "invalid_request" and "canary" in r.json()["reason"]
        r = admin.get("/robots/nobody")
        assert r.status_code == 404 and "nobody" in r.json()["reason"]
        r = admin.post("/robots", json={"robot_id": "r-bad", "spec": {"action_dim": 2}})
        assert r.status_code == 422 and "RobotSpec" in r.json()["reason"]
        assert admin.get("/healthz").json() == {"status": "ok"}


def test_rollout_canary_rollback_over_rest(server: Server, artifacts: dict[str, Path]) -> None:
    with server.client(server.admin) as admin, server.client(server.operator) as op:
        v1 = upload(admin, artifacts["v1"]).json()["policy"]["version"]
        v2 = upload(admin, artifacts["v2"]).json()["policy"]["version"]
        robots = ["c1", "c2", "c3"]
        for robot in robots:
            _robot(op, robot)
        r = admin.post("/rollouts", json={"version": v1, "robots": robots})
        assert r.status_code == 201 and r.json()["status"] == "rolling_out"
        assert {rb: st["state"] for rb, st in r.json()["robot_states"].items()} == dict.fromkeys(robots, "pending")
        for robot in robots:  # complete once every target robot says it runs the version
            op.post(f"/robots/{robot}/heartbeat", json={"running_version": v1})
        assert admin.get(f"/rollouts/{r.json()['id']}").json()["status"] == "complete"
        for _ in range(3):
            _episode(op, "c1", v1, True)  # before the canary's window: not compared with
        r = admin.post("/rollouts", json={"version": v2, "robots": robots, "canary": 1, "max_episodes": 10, "looks": 2})
        rollout = r.json()
        assert rollout["status"] == "canary" and rollout["canary"] == ["c1"]
        assert (rollout["min_episodes"], rollout["max_episodes"], rollout["looks"]) == (5, 10, 2)
        assert rollout["look_sizes"] == [5, 10]
        desired = [op.post(f"/robots/{rb}/heartbeat", json={}).json()["version"] for rb in robots]
        assert desired == [v2, v1, v1]
        for robot in ("c2", "c3"):  # the fleet in the same window: 2 of 10
            for ok in (True, False, False, False, False):
                _episode(op, robot, v1, ok)
        for _ in range(4):
            _episode(op, "c1", v2, True)
        got = admin.get(f"/rollouts/{rollout['id']}").json()
        assert got["status"] == "canary" and got["reason"] is None  # 4 < 5: no look yet
        assert (got["canary_successes"], got["canary_episodes"], got["fleet_successes"], got["fleet_episodes"]) == (
            4,
            4,
            2,
            10,
        )
        _episode(op, "c1", v2, True)  # the first look: 5/5 vs 2/10, p = 0.007 <= 0.05 * (5/10)^2
        got = admin.get(f"/rollouts/{rollout['id']}").json()
        assert got["status"] == "rolling_out" and got["canary_episodes"] == 5, got  # promoted: c2, c3 follow
        assert (
            "canary 5/5 = 1.00 vs fleet 2/10 = 0.20" in got["reason"] and "gain p = 0.006993 <= 0.0125" in got["reason"]
        )
        assert [op.get(f"/robots/{rb}/desired").json()["version"] for rb in robots] == [v2, v2, v2]
        assert {rb: st["state"] for rb, st in got["robot_states"].items()} == {
            "c1": "pending",  # its last heartbeat said v1; the episodes say v2 but only a heartbeat or swap counts
            "c2": "pending",
            "c3": "pending",
        }
        for robot in robots:
            assert op.post(f"/robots/{robot}/swaps", json={"version": v2, "ok": True}).status_code == 201
        assert admin.get(f"/rollouts/{rollout['id']}").json()["status"] == "complete"
        r = admin.post("/rollback", json={"robots": robots})
        assert r.status_code == 200 and set(r.json()["moved"].values()) == {v1}
        assert [op.get(f"/robots/{rb}/desired").json()["version"] for rb in robots] == [v1, v1, v1]
        audit = admin.get("/audit", params={"action": ["rollback", "rollout"]}).json()
        assert [(e["action"], e["actor"]) for e in audit[:3]] == [
            ("rollback", "test-admin"),
            *[("rollout", "test-admin")] * 2,
        ]
        assert audit[1]["version"] == v2 and audit[2]["version"] == v1
        series = admin.get("/stats/success-rate", params={"bucket_s": 60}).json()
        assert sum(p["episodes"] for p in series[v2]) == 5

        # A canary no better than the fleet is halted at its last look, and says why.
        r = admin.post("/rollouts", json={"version": v2, "robots": robots, "canary": 1, "max_episodes": 4, "looks": 1})
        rollout = r.json()
        for ok in (True, False, True, False):
            _episode(op, "c2", v1, ok)
            _episode(op, "c1", v2, ok)
        got = admin.get(f"/rollouts/{rollout['id']}").json()
        assert got["status"] == "halted", got
        assert "no evidence of a gain by the last look 1 of 1 (4 canary episodes)" in got["reason"]
        assert "canary 2/4 = 0.50 vs fleet 2/4 = 0.50" in got["reason"] and "alpha 0.05" in got["reason"]
        assert [op.get(f"/robots/{rb}/desired").json()["version"] for rb in robots] == [v1, v1, v1]


def test_canary_requests_a_rule_cannot_judge_are_refused(server: Server, artifacts: dict[str, Path]) -> None:
    with server.client(server.admin) as admin, server.client(server.operator) as op:
        v1 = upload(admin, artifacts["v1"]).json()["policy"]["version"]
        v2 = upload(admin, artifacts["v2"]).json()["policy"]["version"]
        for robot in ("k1", "k2"):
            _robot(op, robot)
        admin.post("/rollouts", json={"version": v1, "robots": ["k1", "k2"]})
        refused = {
            "leaves none on the current version": {"canary": 2},
            "looks": {"canary": 1, "max_episodes": 3, "looks": 4},
            "min_episodes": {"canary": 1, "min_episodes": 5},  # the old bar's fields are gone
            "tolerance": {"canary": 1, "tolerance": 0.1},
        }
        for reason, extra in refused.items():
            r = admin.post("/rollouts", json={"version": v2, "robots": ["k1", "k2"], **extra})
            assert r.status_code == 422 and reason in r.json()["reason"], (extra, r.text)
        assert [op.get(f"/robots/{rb}/desired").json()["version"] for rb in ("k1", "k2")] == [v1, v1]


def test_success_over_time_has_wilson_intervals(server: Server, artifacts: dict[str, Path]) -> None:
    with server.client(server.admin) as admin, server.client(server.operator) as op:
        v3 = upload(admin, artifacts["v3"]).json()["policy"]["version"]
        _robot(op, "w1")
        at = datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC)  # one bucket of its own, before the other tests' episodes
        for i, ok in enumerate([True] * 7 + [False] * 3):
            _episode(op, "w1", v3, ok, at=at + timedelta(seconds=i))
        points = admin.get("/stats/success-rate", params={"bucket_s": 60, "since": at.isoformat()}).json()[v3]
        point = next(p for p in points if p["t"].startswith("2025-01-01T12:00:00"))
        expected = wilson(7, 10)
        assert (point["successes"], point["episodes"]) == (7, 10)
        assert point["low"] == pytest.approx(expected.low) and point["high"] == pytest.approx(expected.high)
        assert 0.39 < point["low"] < 0.7 < point["high"] < 0.9
        schema = admin.get("/openapi.json").json()["components"]["schemas"]["RatePoint"]
        assert {"low", "high"} <= set(schema["required"]) and "Wilson" in schema["properties"]["low"]["description"]


def test_swap_reports_answer_which_version_ran_when(server: Server, artifacts: dict[str, Path]) -> None:
    with server.client(server.admin) as admin, server.client(server.operator) as op:
        v1 = upload(admin, artifacts["v1"]).json()["policy"]["version"]
        v2 = upload(admin, artifacts["v2"]).json()["policy"]["version"]
        _robot(op, "h1")
        t0 = datetime.now(UTC)
        assert op.post("/robots/h1/heartbeat", json={"running_version": v1, "health": {"ok": True}}).status_code == 200
        at = (t0 + timedelta(seconds=30)).isoformat()
        assert op.post("/robots/h1/swaps", json={"version": v2, "ok": True, "at": at}).status_code == 201
        q = lambda dt: admin.get("/robots/h1/running", params={"at": dt.isoformat()}).json()["version"]  # noqa: E731
        assert q(t0 + timedelta(seconds=10)) == v1 and q(t0 + timedelta(seconds=40)) == v2
        robot = admin.get("/robots/h1").json()
        assert robot["running_version"] == v2 and robot["health"] == {"ok": True} and not robot["stale"]


def test_training_run_is_queued_for_the_trainer_and_a_trainer_reports_on_it(server: Server) -> None:
    with server.client(server.operator) as op:
        r = op.post("/runs", json={"policy": "production", "task": "drawer-close"})
        assert r.status_code == 202, r.text  # on the embedded broker: it waits there for a worker
        run = r.json()
        assert run["external_id"] and run["status"] == "requested"
        got = op.get(f"/runs/{run['id']}").json()
        assert got["params"]["task"] == "drawer-close"
        update = {"progress": 0.5, "stage": "world_model", "status": "running"}
        r = op.patch(f"/runs/{run['id']}", json=update)
        assert r.status_code == 403 and "trainer" in r.json()["reason"]  # a person's operator token: not a trainer
        with server.client(server.trainer) as trainer:
            r = trainer.patch(f"/runs/{run['id']}", json=update)
            assert r.status_code == 200 and r.json()["progress"] == 0.5
            assert trainer.patch(f"/runs/{run['id']}", json={"progress": 2}).status_code == 422


def test_training_run_is_recorded_as_unavailable_when_the_queue_is_down(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", FLYWHEEL_BROKER_URL="redis://127.0.0.1:1/0")  # nothing listens there
    try:
        with server.client(server.operator) as op:
            r = op.post("/runs", json={"policy": "production", "task": "drawer-close"})
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "unavailable" and "queue" in r.json()["reason"]
            run = r.json()["run"]
            assert run["status"] == "unavailable"
            assert op.get(f"/runs/{run['id']}").json()["reason"] == r.json()["reason"]
    finally:
        server.stop()


def test_metrics_count_requests(server: Server) -> None:
    with server.client(None) as anon:
        anon.get("/healthz")
        text = anon.get("/metrics").text
    assert 'flywheel_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "flywheel_http_request_seconds_bucket" in text


def test_openapi_documents_every_resource(server: Server) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    for path in ("/policies", "/rollouts", "/rollback", "/robots/{robot_id}/heartbeat", "/episodes", "/runs"):
        assert path in spec["paths"]
    assert httpx.get(server.url + "/docs").status_code == 200


def test_a_tampered_copy_of_a_registered_version_is_refused_not_existing(
    server: Server, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    """Verified before it is looked up: a tampered artifact that names an existing version is 422 (it was
    201 "existing"), and other content under an existing version's name is 409 (versions are immutable)."""
    import json as _json

    with server.client(server.admin) as admin:
        first = upload(admin, artifacts["v1"])
        assert first.status_code == 201
        version = first.json()["policy"]["version"]
        again = upload(admin, artifacts["v1"])
        assert again.status_code == 201 and again.json()["created"] is False  # the same content: idempotent

        tampered = tmp_path / "tampered"
        tampered.mkdir()
        for f in artifacts["v1"].iterdir():
            (tampered / f.name).write_bytes(f.read_bytes())
        (tampered / "config.json").write_text(
            (tampered / "config.json").read_text().replace('"hidden": 32', '"hidden": 33')
        )
        r = upload(admin, tampered)
        assert r.status_code == 422 and "artifact refused" in r.json()["reason"], r.text

        other = tmp_path / "other"
        other.mkdir()
        for f in artifacts["v1"].iterdir():
            (other / f.name).write_bytes(f.read_bytes())
        manifest = _json.loads((other / "manifest.json").read_text())
        manifest["metrics"] = {"success_rate": 0.99}  # not a hashed file: it verifies, but it is other content
        (other / "manifest.json").write_text(_json.dumps(manifest))
        r = upload(admin, other)
        assert r.status_code == 409 and version in r.json()["reason"], r.text
        assert admin.get(f"/policies/{version}").json()["metrics"] == {"success_rate": 0.5}


def test_a_refused_rollout_is_not_done_and_the_robot_goes_back(server: Server, artifacts: dict[str, Path]) -> None:
    """A robot that refuses a version (NaN probe, bad config, another action space) ends the rollout
    ``refused`` with its reason, and the registry no longer names the version as that robot's desired one."""
    with server.client(server.admin) as admin, server.client(server.operator) as op:
        v1 = upload(admin, artifacts["v1"]).json()["policy"]["version"]
        v2 = upload(admin, artifacts["v2"]).json()["policy"]["version"]
        robots = ["rf1", "rf2", "rf3"]
        for robot in robots:
            _robot(op, robot)
        assert admin.post("/rollouts", json={"version": v1, "robots": robots}).status_code == 201
        plain = admin.post("/rollouts", json={"version": v2, "robots": ["rf1"]}).json()
        assert plain["status"] == "rolling_out" and op.get("/robots/rf1/desired").json()["version"] == v2
        swap = {"version": v2, "ok": False, "reason": "health probe: actions are not finite"}
        assert op.post("/robots/rf1/swaps", json=swap).status_code == 201
        after = admin.get(f"/rollouts/{plain['id']}").json()
        assert after["status"] == "refused"
        assert after["robot_states"] == {"rf1": {"state": "refused", "reason": swap["reason"]}}
        assert "rf1" in after["reason"] and "not finite" in after["reason"]
        assert op.get("/robots/rf1/desired").json()["version"] == v1  # back to what it ran

        canary = admin.post(
            "/rollouts", json={"version": v2, "robots": robots, "canary": 1, "max_episodes": 10, "looks": 2}
        ).json()
        assert canary["status"] == "canary" and op.get("/robots/rf1/desired").json()["version"] == v2
        assert op.post("/robots/rf1/swaps", json=swap).status_code == 201
        after = admin.get(f"/rollouts/{canary['id']}").json()
        assert after["status"] == "refused"  # a canary robot's refusal fails the canary
        assert [op.get(f"/robots/{rb}/desired").json()["version"] for rb in robots] == [v1, v1, v1]
        events = [e["action"] for e in admin.get("/audit").json()]
        assert events.count("rollout_refused") >= 2


def test_a_robots_token_acts_only_as_that_robot(server: Server, tmp_path: Path) -> None:
    """A token bound to robot arm-a may register, heartbeat, report swaps and index episodes as arm-a only, and
    read; it cannot act as another robot, start or write training runs."""
    from data_store.registry import Registry, tokens

    registry = Registry(server.env["FLYWHEEL_REGISTRY_URL"], tmp_path / "unused")
    with registry.session() as s:
        robot_token = tokens.create_token(s, "operator", bound_to=tokens.robot_binding("arm-a"))[0]
    registry.close()
    with server.client(robot_token) as arm, server.client(server.operator) as op:
        _robot(arm, "arm-a")
        assert arm.post("/robots/arm-a/heartbeat", json={}).status_code == 200
        _robot(op, "arm-b")  # a person's operator token still acts for any robot
        for call in (
            lambda: arm.post("/robots", json={"robot_id": "arm-b", "spec": SIM_SPEC.to_json()}),
            lambda: arm.post("/robots/arm-b/heartbeat", json={}),
            lambda: arm.post("/robots/arm-b/swaps", json={"version": "v", "ok": False, "reason": "x"}),
        ):
            r = call()
            assert r.status_code == 403 and "cannot act as robot 'arm-b'" in r.json()["reason"], r.text
        episode = {
            "episode_id": "ep-arm-b", "robot_id": "arm-b", "policy_version": "v", "task": "t", "success": "true",
            "length": 3, "ended_at": datetime.now(UTC).isoformat(),
        }  # fmt: skip
        assert arm.post("/episodes", json=episode).status_code == 403
        assert arm.post("/episodes", json={**episode, "robot_id": "arm-a", "episode_id": "ep-a"}).status_code == 201
        assert arm.post("/runs", json={"task": "t"}).status_code == 403
        assert arm.patch("/runs/1", json={"progress": 0.5}).status_code == 403
        assert arm.get("/robots/arm-b").status_code == 200  # reads stay open to it


def test_lists_page_with_limit_and_offset(server: Server) -> None:
    """Every list is newest first in pages: ``offset`` + ``limit`` walks it without overlap or gap."""
    with server.client(server.operator) as op, server.client(server.admin) as admin:
        _robot(op, "pager")
        for i in range(7):
            _episode(op, "pager", f"v-page-{i}", i % 2 == 0, at=datetime(2026, 1, 1, 0, i, tzinfo=UTC))
        pages = [op.get("/episodes", params={"robot_id": "pager", "limit": 3, "offset": o}).json() for o in (0, 3, 6)]
        ids = [e["episode_id"] for page in pages for e in page]
        assert [len(p) for p in pages] == [3, 3, 1] and len(set(ids)) == 7
        ended = [e["ended_at"] for page in pages for e in page]
        assert ended == sorted(ended, reverse=True)
        for path in ("/policies", "/rollouts", "/runs", "/audit"):
            everything = admin.get(path, params={"limit": 1000}).json()
            paged = admin.get(path, params={"limit": 2, "offset": 1}).json()
            assert paged == everything[1:3], path
            assert admin.get(path, params={"offset": -1}).status_code == 422
