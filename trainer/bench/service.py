"""``flywheel bench service``: what the broker costs a cycle — one task's round trip on Redis and on the
embedded SQLite broker, side by side, through a real worker process each.

A round trip is submit → a ``flywheel worker`` (solo pool, queue ``cpu``) runs ``flywheel.ping`` → the
result is read back from the result backend. A cycle is 6 tasks plus a chord, so its overhead is about
7 round trips; the stages themselves take minutes to hours.
"""

from __future__ import annotations

import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_store.measure import machine
from trainer.service.settings import ServiceSettings


def _env(settings: ServiceSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    env.update({f"FLYWHEEL_{k.upper()}": str(v) for k, v in settings.model_dump().items() if v not in ("", None)})
    return env


def round_trips(settings: ServiceSettings, n: int, timeout_s: float = 120) -> list[float]:
    """Start a worker on ``settings``' broker, time ``n`` sequential pings, stop the worker."""
    from trainer.service.celery_app import create_app, ensure_dirs

    ensure_dirs(settings)
    settings.root.mkdir(parents=True, exist_ok=True)
    log = settings.root / "bench-worker.log"
    cmd = [sys.executable, "-m", "flywheel.cli", "worker", "-Q", "cpu", "-n", f"bench-{secrets.token_hex(3)}@%h"]
    with log.open("wb") as out:
        worker = subprocess.Popen(cmd, env=_env(settings), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    app = create_app(settings)
    try:
        app.send_task("flywheel.ping", queue="cpu").get(timeout=timeout_s)  # the worker is up
        times = []
        for _ in range(n):
            t = time.perf_counter()
            app.send_task("flywheel.ping", queue="cpu").get(timeout=timeout_s, interval=0.01)
            times.append(time.perf_counter() - t)
        return times
    finally:
        app.close()
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()


def run_bench(redis_url: str, n: int) -> Iterator[dict[str, Any]]:
    """JSON lines: median and p90 round trip on the embedded broker and on Redis (keys under a fresh prefix)."""
    import redis

    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as tmp:
        prefix = f"flywheel-bench-{secrets.token_hex(4)}:"
        configs = {
            "sqlite": ServiceSettings(data_dir=Path(tmp) / "sqlite"),
            "redis": ServiceSettings(data_dir=Path(tmp) / "redis", broker_url=redis_url, redis_prefix=prefix),
        }
        try:
            for name, settings in configs.items():
                times = sorted(round_trips(settings, n))
                config = {"broker": name, "tasks": n, "pool": "solo", "backend": settings.backend.split(":")[0]}
                for figure, value in (("median", statistics.median(times)), ("p90", times[int(0.9 * (n - 1))])):
                    yield {"name": "service/task_round_trip", "figure": figure, "value": round(value, 4),
                           "unit": "s", "machine": machine(), "config": config}  # fmt: skip
        finally:
            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()
