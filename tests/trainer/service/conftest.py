"""Fixtures of the trainer-service tests: settings on a temp data dir, a store with episodes, a policy
artifact, a Redis namespace of their own, and worker processes that are always killed."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from service_helpers import Worker, make_policy_artifact, make_settings, record_episodes, service_env

from tests.conftest import need
from trainer.service.settings import ServiceSettings

REDIS_URL = os.environ.get("FLYWHEEL_TEST_REDIS", "redis://127.0.0.1:6379/15")


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    return make_policy_artifact(tmp_path / "policy")


@pytest.fixture
def episodes(tmp_path: Path) -> list[str]:
    return record_episodes(tmp_path / "data" / "episodes", 4)


@pytest.fixture
def embedded(tmp_path: Path) -> ServiceSettings:
    """Nothing configured: the SQLite broker and result backend under the data dir."""
    return make_settings(tmp_path)


@pytest.fixture
def redis_settings(tmp_path: Path) -> Iterator[ServiceSettings]:
    """Redis at FLYWHEEL_TEST_REDIS, every key under a prefix of this test's own, deleted afterwards."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
        reachable = True
    except redis.exceptions.ConnectionError:
        reachable = False
    need(reachable, f"a Redis server at {REDIS_URL} (set FLYWHEEL_TEST_REDIS)")
    prefix = f"flywheel-test-{secrets.token_hex(4)}:"
    yield make_settings(
        tmp_path, broker_url=REDIS_URL, redis_prefix=prefix, visibility_timeout_s=8, restore_interval_s=1
    )
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000)) + list(client.scan_iter(match=f"*{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """start(settings, name, queues="gpu,cpu") -> a running Worker; every one is killed at teardown."""
    started: list[Worker] = []

    def start(settings: ServiceSettings, name: str = "w1", queues: str = "gpu,cpu") -> Worker:
        w = Worker(service_env(settings), tmp_path / f"worker-{name}.log", name, queues)
        started.append(w)
        # ready = its queues are declared. On the embedded SQLite broker a producer declaring the same queue
        # at the same moment races it (kombu: UNIQUE constraint failed: kombu_queue.name) and the worker stalls.
        w.wait_ready(90)
        return w

    yield start
    for w in started:
        w.kill()
