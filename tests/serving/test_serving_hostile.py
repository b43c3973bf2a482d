"""Hostile but well-formed requests against a real server, on SQLite and on PostgreSQL: control characters
(NUL included) and out-of-range integers in every path, query and JSON body field of every operation in the
OpenAPI spec, and oversized bodies. Never a 5xx: a 422 or 413 that says why, before the database sees it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving.serving_helpers import Server, start_server
from tests.serving.test_serving_postgres import postgres_server

HOSTILE_SEGMENTS = ["a%00b", "a%01b", str(2**31), str(2**63), "9" * 30, str(-(2**63))]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if request.param == "sqlite":
        srv = start_server(tmp_path_factory.mktemp("hostile"))
        yield srv
        srv.stop()
        return
    with postgres_server(tmp_path_factory.mktemp("hostile_pg"), "test_hostile") as srv:
        yield srv


def _hostile_body(spec: dict[str, Any], op: dict[str, Any], text: str, number: int) -> dict[str, Any] | None:
    """Every property of the operation's JSON body: strings as ``text``, integers as ``number``."""
    content = op.get("requestBody", {}).get("content", {})
    ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
    if not ref:
        return None
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    body: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        kinds = {prop.get("type")} | {alt.get("type") for alt in prop.get("anyOf", [])}
        if "string" in kinds:
            body[name] = text
        elif "integer" in kinds:
            body[name] = number
    return body


def test_no_5xx_for_hostile_paths_queries_and_bodies(server: Server) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    failures: list[str] = []
    checked = 0
    with server.client(server.admin) as client:
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                params = op.get("parameters", [])
                for segment in HOSTILE_SEGMENTS:
                    url = path
                    for p in params:
                        if p["in"] == "path":
                            url = url.replace("{" + p["name"] + "}", segment)
                    query = {p["name"]: segment.replace("%00", "\x00") for p in params if p["in"] == "query"}
                    for text, number in [("x\x00y", 2**63), ("x\x1by", 2**31), ("ok", -(2**63) - 1)]:
                        body = _hostile_body(spec, op, text, number)
                        kwargs: dict[str, Any] = {"params": query} | ({"json": body} if body is not None else {})
                        response = client.request(method.upper(), url, **kwargs)
                        checked += 1
                        if response.status_code >= 500:
                            failures.append(f"{method.upper()} {url} {query} {body}: {response.status_code}")
    assert checked > 100
    assert failures == [], "\n".join(failures[:20])


def test_control_characters_and_big_ids_are_refused_with_a_reason(server: Server) -> None:
    with server.client(server.viewer) as viewer, server.client(server.admin) as admin:
        r = viewer.get("/policies/a%00b")
        assert r.status_code == 422 and "control characters" in r.json()["reason"]
        r = viewer.get("/rollouts", params={"version": "v\x00"})
        assert r.status_code == 422
        for big in (2**31, 2**63, 10**30):
            r = viewer.get(f"/rollouts/{big}")
            assert r.status_code == 422 and "rollout_id" in r.json()["reason"], r.text
            assert viewer.get(f"/runs/{big}").status_code == 422
        r = admin.put("/aliases/fleet/prod", json={"version": "v1", "why": "because\x00"})
        assert r.status_code == 422 and "control characters" in r.json()["reason"], r.text
        r = admin.put("/aliases/fleet/prod", json={"version": "v1", "why": "line one\nline two"})
        assert r.status_code == 404  # newlines are text; the version does not exist


def test_oversized_bodies_are_413(server: Server) -> None:
    big = {"version": "v1", "why": "x" * (2 << 20)}
    with server.client(server.admin) as admin:
        r = admin.put("/aliases/fleet/prod", json=big)
        assert r.status_code == 413 and r.json()["error"] == "too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: streamed, refused when it passes the limit
            yield b'{"version": "v1", "why": "'
            for _ in range(40):
                yield b"x" * (64 << 10)
            yield b'"}'

        r = admin.put("/aliases/fleet/prod", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
        assert admin.get("/aliases").status_code == 200  # the server goes on


def test_settings_name_the_limits(tmp_path: Path) -> None:
    from serving.settings import Settings

    settings = Settings(data_dir=tmp_path, max_json_bytes=100)
    assert settings.max_json_bytes == 100 and settings.max_body_bytes == 64 << 20
