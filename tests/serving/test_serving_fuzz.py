"""Property-based requests from the OpenAPI spec (schemathesis, bounded) against a real server: no 5xx.

Admin-authenticated, so the fuzzer reaches every handler's body (unauthenticated requests stop at 401).
The server is this module's own: the fuzzer may roll back or alias whatever it finds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.serving.serving_helpers import Server, start_server

schemathesis = pytest.importorskip("schemathesis", reason="pip install schemathesis")


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("fuzz"))
    yield srv
    srv.stop()


def test_no_server_errors(fuzz_server: Server) -> None:
    """Every operation, a bounded number of generated requests each (schemathesis strategies driven by
    hypothesis directly: schemathesis' pytest plugin does not load under this pytest)."""
    schema = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")
    headers = {"Authorization": f"Bearer {fuzz_server.admin}"}
    operations = 0
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
        )
        def no_5xx(case: Any) -> None:
            response = case.call(headers=headers, timeout=20)
            statuses[response.status_code] += 1
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, f"{where}: {response.status_code} {response.text}"
            content_type = str((response.headers.get("content-type") or [""])[0])
            if response.status_code >= 400 and content_type.startswith("application/json"):
                assert "reason" in response.json(), f"{where}: {response.text}"

        no_5xx()
    assert operations >= 20
    assert sum(n for code, n in statuses.items() if code < 300) >= operations, statuses  # handlers were reached
    print(dict(statuses))
