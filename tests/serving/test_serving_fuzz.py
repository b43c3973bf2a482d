"""Property-based requests from the OpenAPI spec (schemathesis, bounded) against a real server, on SQLite and on
PostgreSQL, as an admin, an operator and a viewer: never a 5xx, and every response is one the spec documents (its
status code, its content type, its body's schema).

The server is this module's own: the fuzzer may roll back or alias whatever it finds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.serving.serving_helpers import Server, start_server
from tests.serving.test_serving_postgres import postgres_server

schemathesis = pytest.importorskip("schemathesis", reason="pip install schemathesis")
EXAMPLES = {"admin": 6, "operator": 4, "viewer": 3}  # per operation; bounded so the suite stays minutes, not hours


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fuzz_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if request.param == "sqlite":
        srv = start_server(tmp_path_factory.mktemp("fuzz"))
        yield srv
        srv.stop()
        return
    with postgres_server(Path(tmp_path_factory.mktemp("fuzz_pg")), "test_fuzz") as srv:
        yield srv


@pytest.mark.parametrize("role", list(EXAMPLES))
def test_responses_follow_the_spec_and_are_never_server_errors(fuzz_server: Server, role: str) -> None:
    """Every operation, a bounded number of generated requests each (schemathesis strategies driven by hypothesis
    directly: schemathesis' pytest plugin does not load under this pytest)."""
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    schema = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")
    headers = {"Authorization": f"Bearer {getattr(fuzz_server, role)}"}
    operations = 0
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES[role],
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def follows_the_spec(case: Any) -> None:
            response = case.call(headers=headers, timeout=20)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=checks)  # raises naming the check, with a curl to reproduce

        follows_the_spec()
    assert operations >= 20
    reached = sum(n for code, n in statuses.items() if code < 300)
    assert reached >= (operations if role == "admin" else operations // 3), statuses  # handlers were reached
    print(role, dict(statuses))
