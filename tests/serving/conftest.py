"""Fixtures for the serving tests: tiny VLA artifacts (built once) and a real uvicorn server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving.serving_helpers import Server, make_artifact, start_server


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """v1, v2 (child of v1): good; wide: 7-D actions; nan: NaN actions. Keys map to folders."""
    root = tmp_path_factory.mktemp("artifacts")
    v1 = make_artifact(root / "v1", 1, metrics={"success_rate": 0.5})
    judged = {  # a candidate the flywheel's judge promoted (trainer/cycle.py Verdict.metrics)
        "deploy_temperature": 0.0, "sampling_temperature": 1.3, "sim_success": 0.79, "parent_sim_success": 0.71,
        "sim_sampling_success": 0.95, "parent_sim_sampling_success": 0.66, "imagined_success": 0.6,
        "parent_imagined_success": 0.55, "promoted": 1.0,
    }  # fmt: skip
    make_artifact(root / "v2", 2, parent=v1, metrics=judged)
    make_artifact(root / "v3", 3, parent=v1)
    make_artifact(root / "v4", 6, parent=v1)
    make_artifact(root / "wide", 4, action_dim=7)
    make_artifact(root / "nan", 5, nan_actions=True)
    return {p.name: p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the API, remote-inference and fuzz tests (each uses its own robot ids)."""
    srv = start_server(tmp_path_factory.mktemp("server"))
    yield srv
    srv.stop()
