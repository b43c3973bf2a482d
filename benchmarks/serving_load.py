"""Registry API under concurrent load from a second process: throughput and latency percentiles.

    python benchmarks/serving_load.py [--seconds 10] [--concurrency 16] [--db URL]

A real server process (uvicorn, one worker; SQLite by default, PostgreSQL with ``--db``) and a load
process (``--worker``, asyncio + httpx) that keeps ``concurrency`` requests in flight for ``seconds``,
a robot fleet's mix: 50% heartbeats (a write and the desired-version answer), 20% desired-version
reads, 15% episode index pushes (a write and a canary check), 10% robot list, 5% policy list. Every
request carries an operator token (its lookup is part of each request). Errors are counted, not hidden.

Prints JSON lines ``{"name", "figure", "value", "unit", "machine", "config"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from serving_common import percentile, start_server, tiny_artifact, upload

from data_store.measure import emit

ROBOTS = 20
MIX = (("heartbeat", 50), ("desired", 20), ("episode", 15), ("robots", 10), ("policies", 5))


def request_for(kind: str, robot: str, version: str) -> tuple[str, str, dict[str, Any] | None]:
    if kind == "heartbeat":
        return "POST", f"/robots/{robot}/heartbeat", {"running_version": version, "health": {"ok": True}}
    if kind == "desired":
        return "GET", f"/robots/{robot}/desired", None
    if kind == "episode":
        ended = datetime.now(UTC).isoformat()
        body = {"episode_id": uuid.uuid4().hex, "robot_id": robot, "policy_version": version, "task": "drawer-close",
                "success": random.choice(["true", "false"]), "length": 50, "ended_at": ended}  # fmt: skip
        return "POST", "/episodes", body
    return "GET", f"/{kind}", None


async def load(url: str, token: str, version: str, seconds: float, concurrency: int) -> dict[str, Any]:
    kinds = [k for k, w in MIX for _ in range(w)]
    latencies: dict[str, list[float]] = {k: [] for k, _ in MIX}
    errors: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, limits=limits,
                                 timeout=30) as client:  # fmt: skip

        async def user(i: int) -> None:
            rng = random.Random(i)
            while time.monotonic() < deadline:
                kind = rng.choice(kinds)
                method, path, body = request_for(kind, f"load-{rng.randrange(ROBOTS)}", version)
                t0 = time.perf_counter()
                try:
                    r = await client.request(method, path, json=body)
                    status = str(r.status_code) if r.status_code >= 400 else None
                except httpx.HTTPError as e:
                    status = type(e).__name__
                latencies[kind].append(time.perf_counter() - t0)
                if status:
                    errors[f"{kind}:{status}"] = errors.get(f"{kind}:{status}", 0) + 1

        started = time.monotonic()
        await asyncio.gather(*(user(i) for i in range(concurrency)))
        elapsed = time.monotonic() - started
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--db", default="", help="registry URL (default: SQLite in a temporary folder)")
    p.add_argument("--worker", nargs=3, metavar=("URL", "TOKEN", "VERSION"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:  # the load process: results as one JSON object on stdout
        url, token, version = args.worker
        out = asyncio.run(load(url, token, version, args.seconds, args.concurrency))
        print(json.dumps(out))
        return

    schema = f"bench_{uuid.uuid4().hex[:8]}" if args.db.startswith("postgresql") else ""
    config = {"seconds": args.seconds, "concurrency": args.concurrency, "robots": ROBOTS, "mix": dict(MIX),
              "db": "postgresql" if schema else "sqlite", "uvicorn_workers": 1}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        server = start_server(Path(tmp), db_url=args.db, schema=schema)
        try:
            admin = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.tokens['admin']}"})
            tiny_artifact(Path(tmp) / "a", 0)
            version = upload(admin, Path(tmp) / "a")
            spec = {"action_dim": 4, "state_dim": 4, "action_low": [-1] * 4, "action_high": [1] * 4}
            for i in range(ROBOTS):
                admin.post("/robots", json={"robot_id": f"load-{i}", "spec": spec}).raise_for_status()
            admin.post("/rollouts", json={"version": version}).raise_for_status()
            cmd = [sys.executable, __file__, "--seconds", str(args.seconds), "--concurrency", str(args.concurrency),
                   "--worker", server.url, server.tokens["operator"], version]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=args.seconds + 120)
            result = json.loads(done.stdout.strip().splitlines()[-1])
        finally:
            server.stop()
            if schema:
                from data_store.registry.db import drop_schema

                drop_schema(args.db, schema)

    every = [x for values in result["latencies"].values() for x in values]
    n_errors = sum(result["errors"].values())
    emit("serving_load", "registry API throughput (mixed fleet traffic)", round(len(every) / result["elapsed"], 1),
         "requests/s", config, requests=len(every), errors=n_errors, error_kinds=result["errors"])  # fmt: skip
    emit("serving_load", "latency p50, all requests", round(1000 * percentile(every, 50), 2), "ms", config)
    emit("serving_load", "latency p99, all requests", round(1000 * percentile(every, 99), 2), "ms", config)
    for kind, values in result["latencies"].items():
        emit("serving_load", f"latency p99, {kind}", round(1000 * percentile(values, 99), 2), "ms", config,
             requests=len(values))  # fmt: skip


if __name__ == "__main__":
    main()
