"""A training run started through the server reaches a real trainer worker process (Celery on the
embedded SQLite broker) and its outcome comes back through ``GET /runs/{id}``: here the snapshot finds
no policy artifact at the path given, so the run fails with the trainer's reason: the whole path,
without minutes of training. The server sends the cycle by task name and knows no recipe: a recipe the trainer
does not know fails its run with that reason."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serving.serving_helpers import ROOT, Server, server_env, start_server, wait_until

pytestmark = pytest.mark.slow  # ~20 s: a server and a Celery worker process


@pytest.fixture
def server_and_worker(tmp_path: Path) -> Iterator[Server]:
    pytest.importorskip("trainer.service.pipeline", reason="the trainer service (another package) is not here")
    server = start_server(tmp_path / "data")
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "flywheel.cli", "worker", "--loglevel", "warning"],
        env=server_env(tmp_path / "data", **server.env),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        yield server
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        server.stop()


def test_runs_go_through_the_worker_and_their_outcomes_come_back(server_and_worker: Server, tmp_path: Path) -> None:
    server = server_and_worker
    with server.client(server.operator) as op:
        r = op.post("/runs", json={"policy": str(tmp_path / "no-policy"), "task": "drawer-close"})
        assert r.status_code == 202, r.text
        run = r.json()
        assert run["external_id"] and run["status"] == "requested"
        r = op.post("/runs", json={"policy": "production", "recipe": "fastest"})
        assert r.status_code == 202, r.text  # the server does not know the recipes: the trainer does
        unknown_recipe = r.json()

        def finished(row: dict[str, Any]) -> Callable[[], dict[str, Any] | None]:
            def done() -> dict[str, Any] | None:
                got: dict[str, Any] = op.get(f"/runs/{row['id']}").json()
                return got if got["status"] in ("failed", "succeeded") else None

            return done

        done = wait_until("the worker to finish the run", finished(run), timeout_s=90, every_s=0.5)
        refused = wait_until("the worker to refuse the run", finished(unknown_recipe), timeout_s=30, every_s=0.5)
    assert done["status"] == "failed", done
    assert "no-policy" in done["reason"], done  # the worker's snapshot stage named the missing policy
    assert refused["status"] == "failed" and "fastest" in refused["reason"], refused  # the worker named the recipe
